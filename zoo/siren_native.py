"""The fused native SIREN fitter (CPU, float32 and float64): every Adam step of a network in one kernel.

`siren_native.cpp` fits each network from start to end on one thread: per step one pass over
its pixels in blocks that stay in the cache (the first layer by angle addition over the grid's
axes, each hidden layer's matmul, bias, sin and cos in one register tile, the hand-written
backward fused the same way), then Adam over all its parameters in one pass. Networks are
spread over OpenMP threads. It is built on first use (`weightspace.native.load_library`);
without a compiler `zoo.inr_trainer.fit` takes its torch path, with one warning.
`WEIGHTSPACE_SIREN_NATIVE=0` forces the torch path.

Used where `supported` holds: coordinates on a 1-D or 2-D grid (`siren.grid_axes`), at least
one hidden layer, hidden widths multiples of 8, float32/float64. Same fit as
`zoo.inr_trainer.fit_reference` to rounding (tests/zoo/test_siren_native.py, float64 to 1e-9);
sin/cos are polynomials (float: a few ulp). A network's result depends on nothing but its own
init, target and learning rate (not the thread count nor the other networks of the call).
"""
from __future__ import annotations

import ctypes
import os
from functools import lru_cache
from pathlib import Path

import torch

from weightspace.native import load_or_warn

from .adam import BatchedAdam, bias_corrections
from .siren import SirenConfig

ENV_VAR = "WEIGHTSPACE_SIREN_NATIVE"
SOURCE = Path(__file__).with_name("siren_native.cpp")
LANES = 8  # hidden widths must fill the kernel's 32-byte float vectors


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The built kernel (compiled once per machine, loaded once per process), or None with one
    `RuntimeWarning` where it cannot be built."""
    lib = load_or_warn("weightspace_zoo_siren", SOURCE, "zoo.siren_native: the fused SIREN fitter")
    if lib is None:
        return None
    lib.ws_siren_fit.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_double),
                                 ctypes.POINTER(ctypes.c_void_p)]
    lib.ws_siren_fit.restype = None
    return lib


def supported(cfg: SirenConfig, axes: list[torch.Tensor] | None, targets: torch.Tensor, flat: torch.Tensor) -> bool:
    """Whether the kernel fits this architecture on this grid, flat weights and targets (see the module docstring)."""
    if os.environ.get(ENV_VAR, "1") == "0" or axes is None or len(axes) not in (1, 2):
        return False
    if len(cfg.widths) < 3 or cfg.widths[0] != len(axes) or any(w % LANES for w in cfg.widths[1:-1]):
        return False
    if targets.device.type != "cpu" or targets.dtype not in (torch.float32, torch.float64):
        return False
    if any(t.dtype != targets.dtype or t.device.type != "cpu" for t in (*axes, flat)):
        return False
    return library() is not None


def fit(
    cfg: SirenConfig,
    flat: torch.Tensor,
    axes: list[torch.Tensor],
    targets: torch.Tensor,
    steps: int,
    lr: torch.Tensor,
    target_psnr: float | None,
    check_every: int,
    threads: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fit N SIRENs from their flat (N, total) initial weights in `cfg.keys` order.

    Shapes: targets (N, P, out) on the grid of `axes` (row-major); lr (N,).
    Returns the fitted flat weights (a new tensor), the final MSE (N,) and the Adam steps taken (N,).
    """
    dtype = targets.dtype
    n = targets.shape[0]
    params = flat.contiguous().clone()
    targets = targets.contiguous()
    ax0 = axes[0].contiguous()
    ax1 = axes[1].contiguous() if len(axes) == 2 else torch.zeros(1, dtype=dtype)
    lr = torch.as_tensor(lr).to(dtype).expand(n).contiguous()
    betas, eps = BatchedAdam.betas, BatchedAdam.eps
    bc1, bc2 = (b.to(dtype).contiguous() for b in bias_corrections(betas, torch.arange(1, max(steps, 1) + 1, dtype=torch.float64)))
    mse = torch.empty(n, dtype=dtype)
    taken = torch.empty(n, dtype=torch.int64)
    layers = len(cfg.widths) - 1
    check = check_every if target_psnr is not None else 0
    dims = [0 if dtype == torch.float32 else 1, n, layers, *cfg.widths, len(ax0), len(ax1), steps, check, max(1, threads)]
    scalars = [cfg.w0, target_psnr if target_psnr is not None else 0.0, betas[0], betas[1], eps]
    tensors = [params, targets, ax0, ax1, lr, bc1, bc2, mse, taken]
    library().ws_siren_fit((ctypes.c_int64 * len(dims))(*dims), (ctypes.c_double * len(scalars))(*scalars),
                           (ctypes.c_void_p * len(tensors))(*[t.data_ptr() for t in tensors]))
    return params, mse, taken
