"""`CheckpointPairs.from_trajectories`: G.pt's pairs within each run, lazily indexed."""
from __future__ import annotations

import pytest
import torch

from weightspace.errors import ConfigError, ShapeMismatchError
from weightspace.generate import CheckpointPairs
from weightspace.generate.schedule import cosine_alpha_bar, ddim_timesteps
from weightspace.testing import random_mlp_spec

SPEC = random_mlp_spec([3, 4, 2])
R, C = 3, 4


def _runs():
    g = torch.Generator().manual_seed(0)
    w = {k: torch.randn(R, C, *e.shape, generator=g) for k, e in SPEC.entries.items()}
    return w, torch.rand(R, C, generator=g)


@pytest.mark.parametrize("pairs, per_run", [("forward", 6), ("init", 3), ("next", 3)])
def test_pairs_within_runs(pairs, per_run):
    w, metric = _runs()
    p = CheckpointPairs.from_trajectories(SPEC, w, metric, pairs=pairs)
    assert len(p) == R * per_run
    key = "layers.0.weight"
    for n in range(len(p)):
        r, i = int(p.run[n]), int(p.start_step[n])
        j = [c for c in range(C) if torch.equal(w[key][r, c], p.target[key][n])]
        assert len(j) == 1 and i < j[0]
        assert torch.equal(p.start[key][n], w[key][r, i])
        assert p.start_metric[n] == metric[r, i] and p.target_metric[n] == metric[r, j[0]]
        if pairs == "init":
            assert i == 0
        if pairs == "next":
            assert j[0] == i + 1


def test_indexing_and_runs_select_pairs_lazily():
    w, metric = _runs()
    p = CheckpointPairs.from_trajectories(SPEC, w, metric)
    sub = p.by_runs([2])
    assert len(sub) == 6 and set(sub.run.tolist()) == {2}
    idx = torch.tensor([5, 0, 7])
    picked, full = p[idx], p.materialize()
    for k in SPEC.entries:
        assert torch.equal(picked.start[k], full.start[k][idx])
        assert torch.equal(picked.target[k], full.target[k][idx])
    assert len(p[2:5]) == 3 and len(p[4]) == 1


def test_bad_trajectories_are_named_errors():
    w, metric = _runs()
    with pytest.raises(ShapeMismatchError, match="layers.0.bias"):
        CheckpointPairs.from_trajectories(SPEC, dict(w, **{"layers.0.bias": torch.zeros(R, C, 5)}), metric)
    with pytest.raises(ConfigError, match="pairs="):
        CheckpointPairs.from_trajectories(SPEC, w, metric, pairs="backward")
    with pytest.raises(ConfigError, match="two checkpoints"):
        CheckpointPairs.from_trajectories(SPEC, {k: v[:, :1] for k, v in w.items()}, metric[:, :1])


def test_ddim_grid_and_schedule():
    ab = cosine_alpha_bar(100)
    assert ab.shape == (100,) and bool((ab[1:] < ab[:-1]).all()) and 0 < float(ab[-1]) < float(ab[0]) < 1
    assert ddim_timesteps(100, 1) == [99]
    ts = ddim_timesteps(100, 10)
    assert ts[0] == 99 and ts[-1] == 0 and len(ts) == 10
    with pytest.raises(ConfigError, match="steps"):
        ddim_timesteps(100, 101)
