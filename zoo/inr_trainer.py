"""Fit N SIRENs at once, each to its own signal: MSE, Adam, fixed steps with an
optional early stop at a target PSNR.

`fit` is the fast path. On a CPU grid it runs `siren_native`'s fused kernel (each
network's whole fit on one thread, in cache; networks spread over one thread per
core). Elsewhere (off the grid, widths the kernel lacks, no compiler,
`WEIGHTSPACE_SIREN_NATIVE=0`) networks are cut into groups small enough that a
group's activations stay in the CPU caches, each group runs every step through the
hand-written backward pass of `siren.mse_and_grads`, and the groups are spread over
one worker thread per core (each thread flushes denormals itself: the flag is per
thread, so intra-op threads would miss it). On CUDA it runs as one group.
`fit_reference` is the plain autograd loop it must equal, kept for the tests and
the benchmark. A network that reaches the target PSNR is frozen by the optimizer's
`active` mask, so every result equals fitting that network alone.
"""
from __future__ import annotations

import contextlib
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import torch

from . import siren, siren_native
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
    (measured: with 2 threads the late steps still slowed ~15×), so code under it runs
    single-threaded; `fit` instead gives each of its own worker threads the flag.
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


GROUP_ROWS = 32768  # pixels × networks per group (measured: smaller groups lose more to per-op overhead than they gain in cache)
GROUP_MULTIPLE = 4
Fitted = tuple[dict[str, torch.Tensor], FitResult]


def _flat(init: dict[str, torch.Tensor]) -> tuple[list[str], list[int], torch.Tensor]:
    """Keys, per-network sizes and one flat (N, total) copy of the stacked weights."""
    n = next(iter(init.values())).shape[0]
    keys = list(init)
    return keys, [init[k][0].numel() for k in keys], torch.cat([init[k].detach().reshape(n, -1) for k in keys], dim=1)


def _unflat(keys: list[str], sizes: list[int], flat: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: part.view(flat.shape[0], *like[k].shape[1:]) for k, part in zip(keys, flat.split(sizes, dim=1))}


def _fit_group(cfg: SirenConfig, init: dict[str, torch.Tensor], coords: torch.Tensor, targets: torch.Tensor,
               settings: FitSettings, lr: torch.Tensor | float) -> Fitted:
    """One group of networks through every step (hand-written gradients, no autograd)."""
    n = targets.shape[0]
    keys, sizes, flat = _flat(init)
    axes, work = siren.grid_axes(coords), {}
    opt = BatchedAdam({"flat": flat}, lr=lr)
    active = torch.ones(n, dtype=torch.bool, device=flat.device)
    taken = torch.zeros(n, dtype=torch.long, device=flat.device)
    for step in range(settings.steps):
        mse, grads = siren.mse_and_grads(cfg, _unflat(keys, sizes, flat, init), coords, targets, axes, work)
        if settings.target_psnr is not None and step % settings.check_every == 0:
            active &= psnr_of(mse) < settings.target_psnr
            if not bool(active.any()):
                break
        opt.step(active, {"flat": torch.cat([grads[k].reshape(n, -1) for k in keys], dim=1)})
        taken += active.long()
    weights = _unflat(keys, sizes, flat, init)
    final = ((siren.forward(cfg, weights, coords) - targets) ** 2).mean(dim=(1, 2))
    return {k: v.clone() for k, v in weights.items()}, FitResult(psnr_of(final), final, taken)


def _fit_group_in_worker(job: tuple) -> Fitted:
    """`_fit_group` on a pool thread set up like `flushed_denormals` (one torch thread, denormals flushed)."""
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    return _fit_group(*job)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def fit(
    cfg: SirenConfig,
    init: dict[str, torch.Tensor],
    coords: torch.Tensor,
    targets: torch.Tensor,
    settings: FitSettings,
    lr: torch.Tensor | None = None,
    threads: int | None = None,
    device: torch.device | str | None = None,
    group_rows: int = GROUP_ROWS,
) -> Fitted:
    """Fit stacked SIRENs fast; returns the fitted weights (new CPU tensors) and their metrics.

    Shapes:
        init: key -> (N, ...) initial weights (not modified).
        coords: (P, d) shared, or (N, P, d).
        targets: (N, P, out).
        lr: optional (N,) per-network learning rates (default settings.lr).
    threads: CPU worker threads (default torch.get_num_threads(), every core unless
    the caller or torchrun's OMP_NUM_THREADS=1 says otherwise); device: default CUDA
    when present. The CPU result does not depend on `threads` (same bytes); on CUDA
    it agrees to float rounding.
    """
    device = torch.device(device) if device is not None else default_device()
    n = targets.shape[0]
    lr = torch.full((n,), settings.lr) if lr is None else torch.as_tensor(lr, dtype=torch.float32).expand(n)
    if device.type != "cpu":
        move = lambda t: t.to(device)  # noqa: E731
        weights, r = _fit_group(cfg, {k: move(v) for k, v in init.items()}, move(coords), move(targets), settings, move(lr))
        return {k: v.cpu() for k, v in weights.items()}, FitResult(r.psnr.cpu(), r.mse.cpu(), r.steps.cpu())
    before = torch.get_num_threads()
    workers = max(1, threads or before)
    axes = siren.grid_axes(coords)
    keys, sizes, flat = _flat(init)
    if siren_native.supported(cfg, axes, targets, flat):
        fitted, mse, taken = siren_native.fit(cfg, flat, axes, targets, settings.steps, lr, settings.target_psnr,
                                              settings.check_every, workers)
        weights = {k: v.clone() for k, v in _unflat(keys, sizes, fitted, init).items()}
        return weights, FitResult(psnr_of(mse), mse, taken)
    # groups depend on the shapes alone (never on `workers`): kernels differ by batch size, so this keeps
    # the bytes independent of the thread count; a multiple of GROUP_MULTIPLE groups balances 1, 2 or 4 workers
    count = min(n, GROUP_MULTIPLE * math.ceil(n / max(1, group_rows // targets[0].numel()) / GROUP_MULTIPLE))
    size = math.ceil(n / count)
    groups = [slice(s, min(s + size, n)) for s in range(0, n, size)]
    jobs = [
        (cfg, {k: v[g] for k, v in init.items()}, coords if coords.dim() == 2 else coords[g], targets[g], settings, lr[g])
        for g in groups
    ]
    workers = min(workers, len(groups))
    try:
        if workers == 1:
            with flushed_denormals():
                parts = [_fit_group(*job) for job in jobs]
        else:
            with ThreadPoolExecutor(workers) as pool:
                parts = list(pool.map(_fit_group_in_worker, jobs))
    finally:
        torch.set_num_threads(before)
    stacked = {k: torch.cat([p[0][k] for p in parts]) for k in init}
    cat = lambda name: torch.cat([getattr(p[1], name) for p in parts])  # noqa: E731
    return stacked, FitResult(cat("psnr"), cat("mse"), cat("steps"))


def fit_reference(
    cfg: SirenConfig,
    init: dict[str, torch.Tensor],
    coords: torch.Tensor,
    targets: torch.Tensor,
    settings: FitSettings,
    lr: torch.Tensor | None = None,
) -> Fitted:
    """`fit` by autograd through `siren.forward`, all networks in one batch, one thread (the reference)."""
    n = targets.shape[0]
    keys, sizes, flat = _flat(init)
    flat.requires_grad_(True)
    opt = BatchedAdam({"flat": flat}, lr=settings.lr if lr is None else lr)
    active = torch.ones(n, dtype=torch.bool)
    taken = torch.zeros(n, dtype=torch.long)
    with flushed_denormals():
        for step in range(settings.steps):
            pred = siren.forward(cfg, _unflat(keys, sizes, flat, init), coords)
            mse = ((pred - targets) ** 2).mean(dim=(1, 2))
            if settings.target_psnr is not None and step % settings.check_every == 0:
                active &= psnr_of(mse.detach()) < settings.target_psnr
                if not bool(active.any()):
                    break
            opt.zero_grad()
            mse.sum().backward()
            opt.step(active)
            taken += active.long()
        with torch.no_grad():
            weights = _unflat(keys, sizes, flat.detach(), init)
            final = ((siren.forward(cfg, weights, coords) - targets) ** 2).mean(dim=(1, 2))
    return {k: v.clone() for k, v in weights.items()}, FitResult(psnr_of(final), final, taken)


def mean_psnr(result: FitResult) -> float:
    v = result.psnr[torch.isfinite(result.psnr)]
    return float(v.mean()) if len(v) else math.nan
