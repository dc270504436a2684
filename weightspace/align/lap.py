"""Linear assignment as a permutation: shortest augmenting paths with warm starts.

The solver is in `lap_native.cpp` (Crouse 2016, the algorithm of scipy's
`linear_sum_assignment`), built on first use by `weightspace.native.load_library` (plain `-O3`, so
every CPU returns the same permutations; a C++ compiler, a few seconds, cached in the torch
extensions directory) and called
through ctypes. It starts from a given assignment and column duals (any duals are
feasible once the row duals are recomputed): weight matching solves each group again
after a neighbour moved a little, from the group's current permutation and its last
solve's duals; rows whose pair stays tight keep it, and only the others are augmented. Without a compiler, or with
`WEIGHTSPACE_LAP_NATIVE=0`, scipy's `linear_sum_assignment` solves cold (one warning);
both reach the optimum, they may differ only in which of several optimal permutations
they return. The same library holds weight matching's objective kernel (`gathered_dot`).
"""
from __future__ import annotations

import ctypes
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

ENV_VAR = "WEIGHTSPACE_LAP_NATIVE"
SOURCE = Path(__file__).with_name("lap_native.cpp")


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    """The built solver (compiled on a machine's first call, loaded once per process), or None with one warning."""
    from ..native import load_library

    try:
        lib = load_library("weightspace_align_lap", SOURCE, flags=["-O3"])
    except Exception as err:  # any build or load failure means: use scipy
        warnings.warn(f"weightspace.align: the native assignment solver could not be built ({err}); using scipy",
                      RuntimeWarning, stacklevel=3)
        return None
    lib.ws_lap_solve.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32]
    lib.ws_lap_solve.restype = ctypes.c_int64
    for fn in (lib.ws_gathered_dot, lib.ws_gathered_dot_f32):
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                       ctypes.c_void_p, ctypes.c_int64]
        fn.restype = ctypes.c_double
    return lib


def _native() -> ctypes.CDLL | None:
    return None if os.environ.get(ENV_VAR, "1") == "0" else _library()


def solve(matrix: np.ndarray, start: np.ndarray | None = None, duals: np.ndarray | None = None
          ) -> tuple[np.ndarray, np.ndarray | None]:
    """Columns maximizing sum_i matrix[i, cols[i]] (square, finite float64) and this solve's column duals.

    `start` (a permutation) and `duals` (default zeros) warm-start the native solver; the
    duals returned are None where scipy solved.
    """
    lib = _native()
    if lib is None:
        return linear_sum_assignment(matrix, maximize=True)[1], None
    n = matrix.shape[0]
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    cols = np.array(start, dtype=np.int64) if start is not None else np.full(n, -1, dtype=np.int64)
    v = np.array(duals, dtype=np.float64) if duals is not None else np.zeros(n, dtype=np.float64)
    if lib.ws_lap_solve(n, matrix.ctypes.data, cols.ctypes.data, v.ctypes.data, 1) < 0:
        return linear_sum_assignment(matrix, maximize=True)[1], None
    return cols, v


def native_available() -> bool:
    """Whether the native kernels serve (built, not switched off): the solver and `gathered_dot`."""
    return _native() is not None


def gathered_dot(a: torch.Tensor, b: torch.Tensor, off: np.ndarray, col: np.ndarray, tail: int) -> float:
    """sum_{r, c, t} a[r, c, t] * b.flat[off[r] + col[c] + t] in float64, native (see `native_available`).

    `a` contiguous of len(off) * len(col) * tail elements, `b` contiguous of a's dtype
    (float32 or float64), both on the CPU; `off`, `col` contiguous int64 offsets into `b`.
    Weight matching's objective <A, g · B> without the permuted copy of B.
    """
    lib = _native()
    run = lib.ws_gathered_dot_f32 if a.dtype == torch.float32 else lib.ws_gathered_dot
    return run(a.data_ptr(), b.data_ptr(), len(off), off.ctypes.data, len(col), col.ctypes.data, tail)


def _finite(score: torch.Tensor) -> np.ndarray:
    """`score` as a float64 CPU array (numpy's conversion and finiteness check: several times faster
    than torch's on the CPU), non-finite entries clamped."""
    score = score.detach().cpu()
    matrix = score.numpy().astype(np.float64) if score.dtype == torch.float32 else score.to(torch.float64).numpy()
    if not np.isfinite(matrix).all():
        big = np.finfo(np.float64).max / 4
        matrix = np.nan_to_num(matrix, nan=0.0, posinf=big, neginf=-big)
    return matrix


def best_permutation(score: torch.Tensor) -> torch.Tensor:
    """The permutation p maximizing sum_i score[i, p[i]], as a LongTensor."""
    return warm_permutation(score)[0]


def warm_permutation(score: torch.Tensor, start: torch.Tensor | None = None, duals: np.ndarray | None = None
                     ) -> tuple[torch.Tensor, np.ndarray | None]:
    """`best_permutation` from `start` and `duals` (see `solve`), and the duals that warm-start the next solve."""
    cols, v = solve(_finite(score), None if start is None else start.cpu().numpy(), duals)
    return torch.from_numpy(cols.astype(np.int64)), v


def assignment_value(score: torch.Tensor) -> float:
    """max over permutations p of sum_i score[i, p[i]]."""
    p = best_permutation(score)
    return float(score.to(torch.float64).gather(1, p.unsqueeze(1)).sum())
