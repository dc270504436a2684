"""Generalization prediction end to end on a tiny classifier zoo: the data carries the
manifest's accuracies and splits, the statistics baseline ranks unseen networks
better than chance, every default model trains, and the job writes its outputs."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tasks.jobs import run_job
from tasks.predict_generalization.data import GeneralizationData, TargetScale
from tasks.predict_generalization.models import CHOICES, DEFAULT
from tasks.predict_generalization.run import Settings, train_one
from zoo import ClassifierRecipe, Zoo, build_classifier_zoo


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    """80 two-hidden-layer MLPs (width <= 8, 1-4 epochs) on digits: test accuracies spread over 0.08-0.5."""
    out = tmp_path_factory.mktemp("clf") / "zoo"
    build_classifier_zoo(out, "digits", ClassifierRecipe(arch="mlp", max_width=8, max_epochs=4), count=80, progress=False)
    return out


def _run(argv: list[str]) -> int:
    return run_job(argv[0], argv[1:])


def test_data_matches_the_manifest(tiny_zoo):
    data = GeneralizationData.load(tiny_zoo)
    z = Zoo(tiny_zoo)
    acc = np.asarray(z.column("metrics", "test_acc"), dtype=np.float32)
    seen = []
    for name, split in data.splits.items():
        idx = z.indices(name)
        seen += idx.tolist()
        np.testing.assert_allclose(data.true(name).numpy(), acc[idx], atol=1e-6)
        stacked = z.stacked(indices=idx)
        for key in data.spec.entries:
            torch.testing.assert_close(split.weights[key], stacked[key].float())
    assert sorted(seen) == list(range(len(z)))
    train = data.splits["train"].targets
    assert abs(float(train.mean())) < 1e-5 and abs(float(train.std()) - 1) < 1e-5


def test_target_scale_round_trips():
    y = torch.rand(50, generator=torch.Generator().manual_seed(0))
    scale = TargetScale.fit(y)
    torch.testing.assert_close(scale.invert(scale(y)), y)


def test_job_ranks_unseen_networks_and_writes_outputs(tiny_zoo, tmp_path):
    out = tmp_path / "run"
    assert _run(["predict-generalization", "--zoo", str(tiny_zoo), "--models", "stats", "--seeds", "0", "1",
                 "--epochs", "30", "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["arch"] == "mlp" and results["target"] == "test_acc"
    assert len(results["test_true"]) == results["sizes"]["test"] > 5
    stats = results["models"]["stats"]
    assert stats["seeds"] == [0, 1] and len(stats["test_pred"][0]) == results["sizes"]["test"]
    # measured τ 0.5-0.6 on this zoo; 0.25 leaves room for platform noise, 0 is chance
    assert stats["kendall_tau_mean"] > 0.25
    assert math.isfinite(stats["r2_mean"])
    assert (out / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", [n for n in DEFAULT if n != "stats"])
def test_every_default_model_trains(tiny_zoo, name):
    data = GeneralizationData.load(tiny_zoo)
    run = train_one(CHOICES[name], data, 0, Settings(epochs=1, progress=False))
    assert len(run["pred"]) == len(data.splits["test"])
    assert all(math.isfinite(p) for p in run["pred"]) and math.isfinite(run["loss_curve"][0])
    assert run["params"] > 0
