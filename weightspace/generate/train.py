"""`train_generator`: fit a `CheckpointDiffusion` on checkpoint pairs (AdamW, random minibatches)."""
from __future__ import annotations

import sys

import torch

from ..errors import ConfigError
from .diffusion import CheckpointDiffusion
from .pairs import CheckpointPairs


def train_generator(
    model: CheckpointDiffusion,
    pairs: CheckpointPairs,
    *,
    steps: int,
    batch: int,
    lr: float,
    seed: int = 0,
    progress: bool = True,
    weight_decay: float = 0.0,
    clip: float = 1.0,
) -> list[float]:
    """Train `model` for `steps` minibatches of `batch` pairs; returns the loss of every step.

    Fits the normalizer on `pairs` first unless it is already fitted. Minibatches
    (uniform with replacement), diffusion times and noise come from `seed`, so a run
    is reproducible on one device. Gradients are clipped to norm `clip`; `progress`
    prints about ten lines to stderr.
    """
    if steps < 1 or batch < 1 or lr <= 0:
        raise ConfigError(f"train_generator: steps, batch and lr must be positive, got {steps}, {batch}, {lr}")
    if len(pairs) == 0:
        raise ConfigError("train_generator: no training pairs")
    if not bool(model.normalizer.fitted):
        model.fit_normalizer(pairs)
    device = model.alpha_bar.device
    picks = torch.Generator().manual_seed(seed)
    noise = torch.Generator(device=device).manual_seed(seed + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, foreach=True)
    model.train()
    history: list[float] = []
    every = max(1, steps // 10)
    for step in range(steps):
        idx = torch.randint(0, len(pairs), (batch,), generator=picks)
        loss = model.loss(pairs[idx], generator=noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        history.append(float(loss.detach()))
        if progress and ((step + 1) % every == 0 or step == 0):
            recent = history[-every:]
            print(f"train_generator: step {step + 1}/{steps} loss {sum(recent) / len(recent):.4g}", file=sys.stderr)
    return history
