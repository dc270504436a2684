"""Fit N SIRENs at once, each to its own signal: MSE, Adam, fixed steps with an
optional early stop at a target PSNR.

All networks advance together through stacked matmuls; a network that reaches the
target PSNR is frozen by the optimizer's `active` mask, so its result equals
fitting it alone (the property `tests/zoo/test_inr_trainer.py` checks).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from . import siren
from .adam import BatchedAdam
from .siren import SirenConfig

PEAK_TO_PEAK = 2.0  # signals are scaled to [-1, 1]


@dataclass(frozen=True)
class FitSettings:
    """Optimization of an INR fit: Adam steps, learning rate, optional target PSNR (dB)."""

    steps: int = 300
    lr: float = 1e-3
    target_psnr: float | None = None
    check_every: int = 10


@dataclass(frozen=True)
class FitResult:
    """Per-network outcome: final PSNR (dB), MSE and the number of Adam steps taken."""

    psnr: torch.Tensor
    mse: torch.Tensor
    steps: torch.Tensor


def psnr_of(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of an MSE on signals spanning [-1, 1]."""
    return 10 * torch.log10(PEAK_TO_PEAK**2 / mse.clamp_min(1e-20))


@contextlib.contextmanager
def flushed_denormals() -> Iterator[None]:
    """Flush denormal floats while fitting: near-exact fits otherwise slow down ~20×.

    The flag is per CPU thread and PyTorch's intra-op worker threads never see it
    (measured: with 2 threads the late steps still slowed ~15×), so fitting also runs
    single-threaded; scale out with processes (`torchrun`, one rank per core).
    """
    threads = torch.get_num_threads()
    supported = torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if supported:
            torch.set_flush_denormal(False)


def fit(
    cfg: SirenConfig,
    init: dict[str, torch.Tensor],
    coords: torch.Tensor,
    targets: torch.Tensor,
    settings: FitSettings,
    lr: torch.Tensor | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[dict[str, torch.Tensor], FitResult]:
    """Fit stacked SIRENs; returns the fitted weights (new tensors) and their metrics.

    Shapes:
        init: key -> (N, ...) initial weights (not modified).
        coords: (P, d) shared, or (N, P, d).
        targets: (N, P, out).
        lr: optional (N,) per-network learning rates (default settings.lr).
    """
    n = targets.shape[0]
    keys = list(init)
    sizes = [init[k][0].numel() for k in keys]
    # one flat (N, P) leaf: Adam then runs a handful of ops per step instead of a handful per tensor
    flat = torch.cat([init[k].detach().reshape(n, -1) for k in keys], dim=1).clone().requires_grad_(True)

    def views() -> dict[str, torch.Tensor]:
        return {k: part.view(init[k].shape) for k, part in zip(keys, flat.split(sizes, dim=1))}

    opt = BatchedAdam({"flat": flat}, lr=settings.lr if lr is None else lr)
    active = torch.ones(n, dtype=torch.bool)
    taken = torch.zeros(n, dtype=torch.long)
    with flushed_denormals():
        for step in range(settings.steps):
            pred = siren.forward(cfg, views(), coords)
            mse = ((pred - targets) ** 2).mean(dim=(1, 2))
            if settings.target_psnr is not None and step % settings.check_every == 0:
                active &= psnr_of(mse.detach()) < settings.target_psnr
                if not bool(active.any()):
                    break
            opt.zero_grad()
            mse.sum().backward()
            opt.step(active)
            taken += active.long()
            if on_step is not None:
                on_step(step)
        with torch.no_grad():
            final = ((siren.forward(cfg, views(), coords) - targets) ** 2).mean(dim=(1, 2))
    out = {k: v.detach().clone() for k, v in views().items()}
    return out, FitResult(psnr_of(final), final, taken)


def fit_in_chunks(
    cfg: SirenConfig,
    init: dict[str, torch.Tensor],
    coords: torch.Tensor,
    targets: torch.Tensor,
    settings: FitSettings,
    chunk: int = 256,
) -> tuple[dict[str, torch.Tensor], FitResult]:
    """`fit` over consecutive chunks of networks (faster on CPU caches than one huge batch)."""
    n = targets.shape[0]
    parts, results = [], []
    for s in range(0, n, chunk):
        sl = slice(s, min(s + chunk, n))
        c = coords if coords.dim() == 2 else coords[sl]
        p, r = fit(cfg, {k: v[sl] for k, v in init.items()}, c, targets[sl], settings)
        parts.append(p)
        results.append(r)
    stacked = {k: torch.cat([p[k] for p in parts]) for k in init}
    cat = lambda name: torch.cat([getattr(r, name) for r in results])  # noqa: E731
    return stacked, FitResult(cat("psnr"), cat("mse"), cat("steps"))


def mean_psnr(result: FitResult) -> float:
    v = result.psnr[torch.isfinite(result.psnr)]
    return float(v.mean()) if len(v) else math.nan
