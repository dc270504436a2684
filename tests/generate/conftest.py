"""A toy problem where the target is learnable, and both denoisers trained on it once per session.

The spec is the zoo's classifier MLP (tiny: 16 inputs, width 6, 3 classes), traced.
Starts are that net's default inits; each target is its start shifted, per tensor,
by (start metric − target metric) · SHIFT[tensor]: a known function of the start
and the two metrics, which a generator must learn from pairs alone.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import pytest
import torch

import weightspace as ws
from weightspace.generate import CheckpointDiffusion, CheckpointPairs, train_generator
from weightspace.nn import metanet_spec
from zoo.classifier_nets import ClassifierConfig, init_one

CFG = ClassifierConfig("mlp", (1, 4, 4), width=6, classes=3)
SIZES = {
    "equivariant": {"hidden": 16, "layers": 3},
    "transformer": {"hidden": 32, "layers": 2, "chunk": 16},
}
STEPS, BATCH, LR, TIMESTEPS = 300, 32, 3e-3, 100


def toy_spec() -> ws.WeightSpec:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return metanet_spec(ws.parse(CFG.module(), (torch.randn(2, *CFG.in_shape),)))


def shift(spec: ws.WeightSpec) -> dict[str, float]:
    """The per-tensor direction of the toy update: +0.5 on weights, −0.3 on biases."""
    return {k: (0.5 if k.endswith("weight") else -0.3) for k in spec.entries}


def toy_pairs(spec: ws.WeightSpec, n: int, seed: int) -> CheckpointPairs:
    g = torch.Generator().manual_seed(seed)
    inits = [init_one(CFG, g) for _ in range(n)]
    start = {k: torch.stack([sd[k] for sd in inits]) for k in spec.entries}
    ms = 1.0 + torch.rand(n, generator=g)
    mt = torch.rand(n, generator=g)
    a = shift(spec)
    target = {k: v + (ms - mt).reshape(-1, *([1] * (v.dim() - 1))) * a[k] for k, v in start.items()}
    return CheckpointPairs(start, target, ms, mt)


@dataclass
class Trained:
    spec: ws.WeightSpec
    pairs: CheckpointPairs
    models: dict[str, CheckpointDiffusion]
    losses_before: dict[str, float]
    losses_after: dict[str, float]
    histories: dict[str, list[float]]


def eval_loss(model: CheckpointDiffusion, pairs: CheckpointPairs) -> float:
    """The diffusion loss on `pairs`, with fixed times and noise (four draws averaged)."""
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        return sum(float(model.loss(pairs, generator=g)) for _ in range(4)) / 4


@pytest.fixture(scope="session")
def trained() -> Trained:
    # a session fixture runs before the suite's per-test one-thread fixture: set it here
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train()
    finally:
        torch.set_num_threads(threads)


def _train() -> Trained:
    torch.manual_seed(0)
    spec = toy_spec()
    pairs = toy_pairs(spec, 256, seed=0)
    held_out = toy_pairs(spec, 64, seed=1)
    models, before, after, histories = {}, {}, {}, {}
    for name, sizes in SIZES.items():
        model = CheckpointDiffusion(spec, name, timesteps=TIMESTEPS, **sizes)
        model.fit_normalizer(pairs)
        before[name] = eval_loss(model, held_out)
        histories[name] = train_generator(model, pairs, steps=STEPS, batch=BATCH, lr=LR, progress=False)
        after[name] = eval_loss(model, held_out)
        models[name] = model.eval()
    return Trained(spec, pairs, models, before, after, histories)
