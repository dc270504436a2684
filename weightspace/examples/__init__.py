"""Small example models for `weightspace inspect --example NAME` and the docs.

Each builder returns `(model, example_inputs)` with seeded random weights; the
bundled `siren.safetensors` is a SIREN INR checkpoint for the state-dict path.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import UnknownNameError

BUNDLED = Path(__file__).with_name("siren.safetensors")


class Sine(nn.Module):
    """sin(ω0·x), the SIREN activation."""

    def __init__(self, w0: float = 30.0):
        super().__init__()
        self.w0 = w0

    def forward(self, x):
        return torch.sin(self.w0 * x)


def siren(widths=(2, 32, 32, 1), w0: float = 30.0) -> nn.Sequential:
    """A SIREN INR (Sitzmann et al.) as a Sequential of Linear/Sine layers."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(Sine(w0))
    return nn.Sequential(*layers)


class SmallResNet(nn.Module):
    """Two residual stages (identity and 1×1-conv shortcuts) with BatchNorm."""

    def __init__(self, c1: int = 8, c2: int = 12, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c1, 3, padding=1), nn.BatchNorm2d(c1))
        self.a = nn.Sequential(nn.Conv2d(c1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.Conv2d(c1, c1, 3, padding=1), nn.BatchNorm2d(c1))
        self.b = nn.Sequential(nn.Conv2d(c1, c2, 3, padding=1, stride=2), nn.BatchNorm2d(c2), nn.ReLU(), nn.Conv2d(c2, c2, 3, padding=1), nn.BatchNorm2d(c2))
        self.shortcut = nn.Sequential(nn.Conv2d(c1, c2, 1, stride=2), nn.BatchNorm2d(c2))
        self.head = nn.Linear(c2, classes)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(x + self.a(x))
        x = torch.relu(self.shortcut(x) + self.b(x))
        return self.head(x.mean((2, 3)))


class TinyTransformer(nn.Module):
    """Token classifier: embedding + learned positions, one pre-norm block."""

    def __init__(self, vocab: int = 50, d: int = 32, heads: int = 4, length: int = 16, classes: int = 5):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(length, d) * 0.02)
        self.block = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos[: tokens.shape[1]]
        return self.head(self.block(x).mean(1))


def build(name: str) -> tuple[nn.Module, tuple]:
    """One of `NAMES`, with seeded weights and example inputs."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    if name == "mlp":
        return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10)), (torch.randn(4, 64, generator=g),)
    if name == "siren":
        return siren(), (torch.rand(16, 2, generator=g) * 2 - 1,)
    if name == "cnn":
        model = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
        )
        return model, (torch.randn(4, 1, 8, 8, generator=g),)
    if name == "resnet":
        return SmallResNet(), (torch.randn(2, 3, 8, 8, generator=g),)
    if name == "transformer":
        return TinyTransformer(), (torch.randint(0, 50, (2, 12), generator=g),)
    if name == "gru":
        return _GRUClassifier(), (torch.randn(7, 2, 5, generator=g),)
    raise UnknownNameError(f"unknown example {name!r}; choose one of {NAMES}")


class _GRUClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(5, 12, num_layers=2)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        return self.head(self.rnn(x)[0][-1])


NAMES = ("mlp", "siren", "cnn", "resnet", "transformer", "gru")
