"""`Moments`: the running unit statistics activation matching, ZipIt! and CCA share, against torch's own."""
from __future__ import annotations

import torch

from weightspace.align.moments import Moments


def _data(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(40, 5, generator=gen, dtype=torch.float64) @ torch.randn(5, 5, generator=gen, dtype=torch.float64)
            for _ in range(3)]


def test_batched_moments_match_the_whole_data_statistics():
    xs = _data()
    m = Moments(3)
    for lo in range(0, 40, 10):
        m.add([x[lo : lo + 10] for x in xs])
    whole = torch.cat(xs, 1)
    assert m.n == 40
    assert torch.allclose(m.stacked_correlation(), torch.corrcoef(whole.T), atol=1e-6)
    cov = torch.cov(whole.T, correction=0)
    assert torch.allclose(m.covariance(2, 0), cov[10:, :5], atol=1e-12)


def test_only_the_requested_pairs_are_kept():
    xs = _data(1)
    m = Moments(3, pairs=((0, 0), (0, 2)))
    m.add(xs)
    assert set(m.cross) == {(0, 0), (0, 2)}
    assert torch.allclose(m.covariance(2, 0), m.covariance(0, 2).T)
