"""`weightspace merge`: HF folders and sharded safetensors in and out, one-line errors with exit 2."""
from __future__ import annotations

import json

import pytest
import torch

import weightspace as ws
from weightspace.cli.main import main
from weightspace.cli.merge import shard_bytes
from weightspace.merge import merge_models

from tests.align.digits import digits, mlp


@pytest.fixture
def mlps(tmp_path):
    paths = []
    for seed in range(3):
        torch.manual_seed(seed)
        paths.append(ws.save(mlp().state_dict(), tmp_path / f"m{seed}.safetensors"))
    return paths


def test_merge_writes_sharded_safetensors_equal_to_the_library(tmp_path, mlps, capsys):
    out = tmp_path / "ties"
    code = main(["merge", str(mlps[1]), str(mlps[2]), "--base", str(mlps[0]), "--method", "ties",
                 "--density", "0.4", "--out", str(out), "--max-shard-size", "10KB"])
    assert code == 0
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    want = merge_models([ws.load(p) for p in mlps[1:]], "ties", base=ws.load(mlps[0]), density=0.4).state_dict
    got = ws.load(out)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert "held at most" in capsys.readouterr().out


def test_merge_aligns_with_the_spec_of_a_model_factory(tmp_path, mlps):
    out = tmp_path / "aligned.safetensors"
    code = main(["merge", *map(str, mlps[:2]), "--method", "linear", "--align", "weight",
                 "--model", "tests.align.factories:digits_mlp", "--out", str(out)])
    assert code == 0
    spec = ws.load_spec(out)
    assert spec is not None and len(spec.groups) == 2
    want = merge_models([ws.load(p) for p in mlps[:2]], "linear", spec=spec, align="weight",
                        generator=torch.Generator().manual_seed(0)).state_dict
    got = ws.load(out)
    assert all(torch.equal(got[k], want[k]) for k in want)
    x = digits()[2][:100]
    net = mlp()
    net.load_state_dict(got)
    assert torch.isfinite(net(x)).all()


@pytest.mark.parametrize("extra, message", [
    (["--method", "ties"], "needs a base model"),
    (["--method", "slerp", "--density", "0.5"], "takes no --density"),
    (["--method", "linear", "--align", "weight"], "--align weight needs --model"),
    (["--method", "linear", "--max-shard-size", "lots"], "--max-shard-size"),
    (["--method", "dare", "--base", "{m0}", "--p", "1.5"], "p must lie"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, mlps, capsys, extra, message):
    extra = [e.format(m0=mlps[0]) for e in extra]
    code = main(["merge", str(mlps[1]), str(mlps[2]), *extra, "--out", str(tmp_path / "o.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.safetensors").exists()


def test_output_equal_to_an_input_is_refused(tmp_path, mlps, capsys):
    before = mlps[1].read_bytes()
    code = main(["merge", str(mlps[0]), str(mlps[1]), "--method", "linear", "--out", str(mlps[1])])
    assert code == 2 and "OutputIsInputError" in capsys.readouterr().err
    assert mlps[1].read_bytes() == before


def test_shard_sizes_parse():
    assert shard_bytes("10KB") == 10_000 and shard_bytes("2GiB") == 2 * 1024**3 and shard_bytes("123") == 123


def test_zipit_through_the_cli_equals_the_library(tmp_path, mlps, capsys):
    from weightspace.merge import zip_models

    from tests.align.factories import digits_test_batches

    out = tmp_path / "zipped.safetensors"
    code = main(["merge", *map(str, mlps[:2]), "--method", "zipit", "--model", "tests.align.factories:digits_mlp",
                 "--data", "tests.align.factories:digits_test_batches", "--depth", "1", "--out", str(out)])
    assert code == 0 and "kept separate" in capsys.readouterr().out
    want = zip_models([ws.load(p) for p in mlps[:2]], mlp(), digits_test_batches(), method="zipit", depth=1)
    got = ws.load(out)
    assert set(got) == set(want.state_dict) and all(torch.equal(got[k], want.state_dict[k]) for k in got)
    assert got["2.weight"].shape == (128, 64) and ws.load_spec(out) is None  # wider: no spec stored


@pytest.mark.parametrize("extra, message", [
    (["--method", "zipit", "--model", "tests.align.factories:digits_mlp"], "needs --model MODULE:FACTORY and --data"),
    (["--method", "cca", "--base", "{m0}", "--model", "m:f", "--data", "m:f"], "takes no --base"),
    (["--method", "cca", "--align", "weight", "--model", "m:f", "--data", "m:f"], "drop --align weight"),
    (["--method", "ties", "--base", "{m0}", "--depth", "1"], "apply to --method zipit or cca"),
])
def test_feature_merge_bad_input_is_one_line_and_exit_2(tmp_path, mlps, capsys, extra, message):
    extra = [e.format(m0=mlps[0]) for e in extra]
    code = main(["merge", str(mlps[1]), str(mlps[2]), *extra, "--out", str(tmp_path / "o.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.safetensors").exists()
