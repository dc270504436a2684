"""The assignment solver: the optimum from any warm start, against scipy; the scipy fallback."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from weightspace.align import lap


def _value(m: np.ndarray, cols: np.ndarray) -> float:
    return float(m[np.arange(len(cols)), cols].sum())


def _optimum(m: np.ndarray) -> float:
    return _value(m, linear_sum_assignment(m, maximize=True)[1])


def _matrices(rng: np.random.Generator):
    """Gaussian, tied (small integers), all-zero and badly scaled matrices of sizes 1..40."""
    for trial in range(120):
        n = int(rng.integers(1, 41))
        kind = trial % 4
        if kind == 0:
            yield rng.standard_normal((n, n))
        elif kind == 1:
            yield rng.integers(0, 3, (n, n)).astype(np.float64)
        elif kind == 2:
            yield np.zeros((n, n))
        else:
            yield rng.standard_normal((n, n)) * 10.0 ** rng.integers(-8, 9)


def test_the_native_solver_builds():
    assert lap._library() is not None


def test_cold_and_warm_solves_reach_scipys_optimum():
    rng = np.random.default_rng(0)
    for m in _matrices(rng):
        n = len(m)
        best = _optimum(m)
        cold, duals = lap.solve(m)
        assert sorted(cold.tolist()) == list(range(n)) and duals is not None
        assert _value(m, cold) == pytest.approx(best, rel=1e-12, abs=1e-12)
        start, guess = rng.permutation(n), rng.standard_normal(n) * 3  # any start and any duals are valid
        warm, _ = lap.solve(m, start, guess)
        assert sorted(warm.tolist()) == list(range(n))
        assert _value(m, warm) == pytest.approx(best, rel=1e-12, abs=1e-12)


def test_a_warm_start_from_the_optimum_keeps_it():
    rng = np.random.default_rng(1)
    m = rng.standard_normal((64, 64))
    cols, duals = lap.solve(m)
    again, _ = lap.solve(m, cols, duals)
    assert np.array_equal(again, cols)
    nudged = m + 1e-3 * rng.standard_normal(m.shape)  # a small change: still the optimum of the new matrix
    moved, _ = lap.solve(nudged, cols, duals)
    assert _value(nudged, moved) == pytest.approx(_optimum(nudged), rel=1e-12)


def test_non_finite_scores_are_clamped():
    score = torch.tensor([[float("nan"), 1.0], [float("inf"), 0.0]])
    assert lap.best_permutation(score).tolist() == [1, 0]


def test_scipy_serves_when_switched_off(monkeypatch):
    monkeypatch.setenv(lap.ENV_VAR, "0")
    m = np.random.default_rng(2).standard_normal((30, 30))
    cols, duals = lap.solve(m, np.arange(30), np.zeros(30))
    assert duals is None
    assert np.array_equal(cols, linear_sum_assignment(m, maximize=True)[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gathered_dot_is_the_dot_with_the_permuted_tensor(dtype):
    gen = torch.Generator().manual_seed(3)
    a, b = (torch.randn(6, 5, 4, 3, generator=gen, dtype=dtype) for _ in range(2))
    p0, p1 = torch.randperm(6, generator=gen), torch.randperm(5, generator=gen)
    moved = b[p0][:, p1]  # B' = B at the permutations of dims 0 and 1; dims 2, 3 a contiguous tail of 12
    off = (p0.numpy() * 60).astype(np.int64)
    col = (p1.numpy() * 12).astype(np.int64)
    value = lap.gathered_dot(a, b, off, col, 12)
    assert value == pytest.approx(float(torch.dot(a.double().reshape(-1), moved.double().reshape(-1))), rel=1e-12)
    square = torch.randn(7, 7, generator=gen, dtype=dtype)  # both dims permuted: no tail
    q0, q1 = torch.randperm(7, generator=gen), torch.randperm(7, generator=gen)
    expected = float(torch.dot(square.double().reshape(-1), square[q0][:, q1].double().reshape(-1)))
    got = lap.gathered_dot(square, square, (q0.numpy() * 7).astype(np.int64), q1.numpy().astype(np.int64), 1)
    assert got == pytest.approx(expected, rel=1e-12)
    assert got != pytest.approx(float(torch.dot(square.double().reshape(-1), square.double().reshape(-1))), rel=1e-6)
