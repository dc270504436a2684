"""Small models trained briefly on scikit-learn's digits, for the barrier tests (cached per session)."""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn


@lru_cache(maxsize=1)
def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_test, y_test): 8×8 digits scaled to [0, 1], a fixed 1200/597 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:1200], y[:1200], x[1200:], y[1200:]


def batches(x: torch.Tensor, y: torch.Tensor, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Equal-sized (inputs, targets) batches; the last partial batch is dropped."""
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(y) - size + 1, size)]


def mlp(width: int = 64) -> nn.Module:
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))


def cnn(c: int = 16) -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c * 16, 10),
    )


def train(build, seed: int, epochs: int = 30, lr: float = 3e-3, batch: int = 60) -> nn.Module:
    """Train `build()` from `seed` with Adam on the training split; returns it in eval mode."""
    x, y, _, _ = digits()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(y))
            for i in range(0, len(y), batch):
                idx = order[i : i + batch]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return model.eval()


@lru_cache(maxsize=4)
def trained_pair(kind: str) -> tuple[nn.Module, nn.Module]:
    build = {"mlp": mlp, "cnn": cnn}[kind]
    epochs = {"mlp": 30, "cnn": 8}[kind]
    return train(build, 1, epochs), train(build, 2, epochs)
