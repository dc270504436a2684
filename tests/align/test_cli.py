"""`weightspace align` end to end through the real entry point."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

import weightspace as ws
from weightspace import align
from weightspace.align.weight_matching import alignment_objective
from weightspace.align.record import METADATA_KEY
from weightspace.cli import main as cli

from .digits import trained_pair
from .models import state


@pytest.fixture
def checkpoints(tmp_path):
    a, b = trained_pair("mlp")
    pa, pb = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    ws.save(state(a), pa)
    ws.save(state(b), pb)
    return pa, pb


def _run(monkeypatch, argv):
    monkeypatch.setitem(cli.SUBCOMMANDS, "align", "weightspace.cli.align")
    return cli.main(argv)


def test_align_writes_merged_model_permutation_and_plot(monkeypatch, tmp_path, checkpoints, capsys):
    pa, pb = checkpoints
    out, plot = tmp_path / "merged.safetensors", tmp_path / "barrier.png"
    code = _run(monkeypatch, [
        "align", str(pa), str(pb), "--model", "tests.align.factories:digits_mlp",
        "--data", "tests.align.factories:digits_test_batches", "--method", "weight",
        "--out", str(out), "--plot", str(plot), "--steps", "5",
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert "loss barrier" in printed and "merged model written" in printed
    assert plot.stat().st_size > 0
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    g = ws.GroupElement.from_json(meta[METADATA_KEY])
    spec = ws.load_spec(out)
    sd_a, sd_b = ws.load(pa), ws.load(pb)
    assert set(g.perms) == set(spec.groups)
    expected = align.interpolate(sd_a, spec.apply(sd_b, g), 0.5)
    merged = ws.load(out)
    assert all(torch.allclose(merged[k], expected[k]) for k in expected)
    assert alignment_objective(spec, sd_a, spec.apply(sd_b, g)) > alignment_objective(spec, sd_a, sd_b)
    assert json.loads(meta[METADATA_KEY])["perms"]


def test_align_reports_mismatched_checkpoints(monkeypatch, tmp_path, checkpoints, capsys):
    pa, _ = checkpoints
    sd = ws.load(pa)
    sd["2.weight"] = torch.zeros(64, 63)
    bad = tmp_path / "bad.safetensors"
    ws.save(sd, bad)
    code = _run(monkeypatch, ["align", str(pa), str(bad), "--model", "tests.align.factories:digits_mlp"])
    assert code == 2
    assert "'2.weight'" in capsys.readouterr().err


def test_activation_method_needs_data(monkeypatch, checkpoints, capsys):
    pa, pb = checkpoints
    code = _run(monkeypatch, ["align", str(pa), str(pb), "--model", "tests.align.factories:digits_mlp",
                              "--method", "activation"])
    assert code == 2
    assert "needs --data" in capsys.readouterr().err


def test_activation_method_traces_the_model_once(monkeypatch, tmp_path, checkpoints, capsys):
    """One trace per model: the CLI parses once and activation matching reuses its sites."""
    pa, pb = checkpoints
    exports = []
    real = torch.export.export

    def counted(*args, **kwargs):
        exports.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.export, "export", counted)
    out = tmp_path / "merged.safetensors"
    code = _run(monkeypatch, ["align", str(pa), str(pb), "--model", "tests.align.factories:digits_mlp",
                              "--data", "tests.align.factories:digits_test_batches", "--method", "activation",
                              "--out", str(out), "--steps", "3"])
    assert code == 0, capsys.readouterr().err
    assert len(exports) == 1
    sd_a, merged = ws.load(pa), ws.load(out)
    assert set(merged) == set(sd_a)
