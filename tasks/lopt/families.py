"""Task families for meta-training and evaluating learned optimizers, sampled by seed.

A family draws a `Task` from a seed: an architecture (widths, depth, init scale
sampled from the family's ranges), its spec (`ws.parse`, cached per architecture),
initial weights and a deterministic minibatch stream. Tasks are functional: the
parameters are a dict, so meta-training can backpropagate through unrolls.

Families (see `FAMILIES`): MLPs on digits with sampled width/depth/init, a small CNN
on digits, MLPs on MNIST-1D (if `mnist1d` is installed), and a character-level MLP
language model on scikit-learn's dataset descriptions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

import weightspace as ws
from weightspace.errors import UnknownNameError
from weightspace.spec import WeightSpec

from . import data

Params = dict[str, torch.Tensor]
_SPECS: dict[tuple, WeightSpec] = {}


@dataclass
class Task:
    """One training problem: a model architecture, its spec, data and initial weights."""

    name: str
    model: nn.Module
    spec: WeightSpec
    split: data.Split
    params0: Params
    batch_size: int
    seed: int

    def init_params(self, dtype: torch.dtype = torch.float32) -> Params:
        return {k: v.detach().clone().to(dtype) for k, v in self.params0.items()}

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Minibatch `step` (the same for every optimizer: paired comparisons)."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        idx = torch.randint(0, len(self.split.y_train), (self.batch_size,), generator=gen)
        return self.split.x_train[idx], self.split.y_train[idx]

    def loss(self, params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(self.model, params, (x,)), y)

    @torch.no_grad()
    def evaluate(self, params: Params) -> tuple[float, float]:
        """(full training loss, test accuracy)."""
        train = self.loss(params, self.split.x_train, self.split.y_train).item()
        logits = functional_call(self.model, params, (self.split.x_test,))
        return train, (logits.argmax(-1) == self.split.y_test).float().mean().item()


def _spec_for(arch: tuple, model: nn.Module, example: torch.Tensor) -> WeightSpec:
    if arch not in _SPECS:
        _SPECS[arch] = ws.parse(model, (example,))
    return _SPECS[arch]


def _scaled_init(model: nn.Module, scale: float) -> Params:
    return {k: v.detach().clone() * (scale if k.endswith("weight") else 1.0) for k, v in model.state_dict().items()}


def _log_uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    u = torch.rand((), generator=gen).item()
    return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


def _choice(gen: torch.Generator, options: tuple):
    return options[int(torch.randint(0, len(options), (), generator=gen))]


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class MLPFamily:
    """ReLU MLPs with `depth` hidden layers of one sampled width, init scaled log-uniformly."""

    name: str
    dataset: str = "digits"
    widths: tuple[int, ...] = (16, 32, 48, 64)
    depths: tuple[int, ...] = (2,)
    init_scale: tuple[float, float] = (0.5, 2.0)
    batch_size: int = 128

    def sample(self, seed: int) -> Task:
        gen = torch.Generator().manual_seed(seed)
        width, depth = _choice(gen, self.widths), _choice(gen, self.depths)
        scale = _log_uniform(gen, *self.init_scale)
        split = data.digits() if self.dataset == "digits" else data.mnist1d()
        sizes = [split.x_train.shape[1], *([width] * depth), split.classes]
        torch.manual_seed(seed)
        model = _mlp(sizes)
        spec = _spec_for(("mlp", *sizes), model, split.x_train[:2])
        return Task(f"{self.name}[w={width},d={depth},s={scale:.2f}]", model, spec, split,
                    _scaled_init(model, scale), self.batch_size, seed)


class _CNN(nn.Module):
    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3)
        self.conv2 = nn.Conv2d(channels, channels, 3)
        self.head = nn.Linear(channels * 16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(h.flatten(1))


@dataclass(frozen=True)
class CNNFamily:
    """Two 3×3 convolutions and a linear head on 8×8 digits, channels sampled."""

    name: str
    channels: tuple[int, ...] = (4, 8, 12)
    init_scale: tuple[float, float] = (0.5, 2.0)
    batch_size: int = 128

    def sample(self, seed: int) -> Task:
        gen = torch.Generator().manual_seed(seed)
        c, scale = _choice(gen, self.channels), _log_uniform(gen, *self.init_scale)
        split = data.digits(image=True)
        torch.manual_seed(seed)
        model = _CNN(c, split.classes)
        spec = _spec_for(("cnn", c), model, split.x_train[:2])
        return Task(f"{self.name}[c={c},s={scale:.2f}]", model, spec, split, _scaled_init(model, scale),
                    self.batch_size, seed)


@dataclass(frozen=True)
class CharFamily:
    """Character-level MLP language model: embed `context` chars, tanh hidden layer, logits."""

    name: str
    widths: tuple[int, ...] = (64, 96)
    embed: int = 8
    context: int = 8
    batch_size: int = 128

    def sample(self, seed: int) -> Task:
        gen = torch.Generator().manual_seed(seed)
        width = _choice(gen, self.widths)
        split = data.descr_chars(self.context)
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Embedding(split.classes, self.embed),
            nn.Flatten(),
            nn.Linear(self.embed * self.context, width),
            nn.Tanh(),
            nn.Linear(width, split.classes),
        )
        spec = _spec_for(("char", split.classes, self.embed, self.context, width), model, split.x_train[:2])
        return Task(f"{self.name}[w={width}]", model, spec, split, _scaled_init(model, 1.0), self.batch_size, seed)


Family = MLPFamily | CNNFamily | CharFamily


@dataclass(frozen=True)
class Registry:
    """Named families; `available()` leaves out those whose optional data is missing."""

    families: dict[str, Callable[[], Family]] = field(default_factory=dict)

    def get(self, name: str) -> Family:
        if name not in self.families:
            raise UnknownNameError(f"unknown task family {name!r}; known: {sorted(self.families)}")
        if name == "mlp-mnist1d" and not data.mnist1d_available():
            raise ImportError("family 'mlp-mnist1d' needs the `mnist1d` package: pip install mnist1d")
        return self.families[name]()

    def available(self) -> list[str]:
        return [n for n in self.families if n != "mlp-mnist1d" or data.mnist1d_available()]


FAMILIES = Registry(
    {
        # meta-training distribution: 2 hidden layers, widths 16-64, init x[0.5, 2]
        "mlp-digits": lambda: MLPFamily("mlp-digits"),
        "mlp-digits-tiny": lambda: MLPFamily("mlp-digits-tiny", widths=(8,), depths=(1,), batch_size=64),
        # held out: unseen widths, unseen depth, another dataset, other architectures
        "mlp-digits-wide": lambda: MLPFamily("mlp-digits-wide", widths=(128, 256)),
        "mlp-digits-deep": lambda: MLPFamily("mlp-digits-deep", widths=(32, 64), depths=(4,)),
        "mlp-mnist1d": lambda: MLPFamily("mlp-mnist1d", dataset="mnist1d", widths=(64,)),
        "cnn-digits": lambda: CNNFamily("cnn-digits"),
        "char-mlp": lambda: CharFamily("char-mlp"),
    }
)
