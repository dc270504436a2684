"""Small models trained briefly on scikit-learn's digits, for the barrier tests (cached per session).

The data and the two architectures are the merge-digits job's (`tasks.merge_digits.data`).
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from tasks.merge_digits.data import cnn, digits, mlp


def batches(x: torch.Tensor, y: torch.Tensor, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Equal-sized (inputs, targets) batches; the last partial batch is dropped."""
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(y) - size + 1, size)]


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
