"""`weightspace generate`: writes a checkpoint with the spec in its metadata; a mismatched
start checkpoint and an existing --out end with exit code 2 and one line naming the problem."""
from __future__ import annotations

import torch
from safetensors import safe_open

import weightspace as ws
from weightspace.cli.main import main
from weightspace.generate import save_generator

from .conftest import CFG, toy_pairs


def _files(trained, tmp_path):
    gen = save_generator(tmp_path / "gen.safetensors", trained.models["equivariant"])
    start = {k: v[0] for k, v in toy_pairs(trained.spec, 1, seed=9).start.items()}
    init = ws.save(start, tmp_path / "init.safetensors")
    return gen, init, start


def test_generate_writes_a_checkpoint(trained, tmp_path, capsys):
    gen, init, start = _files(trained, tmp_path)
    out = tmp_path / "out.safetensors"
    code = main(["generate", "--model", str(gen), "--from", str(init), "--target-loss", "0.3",
                 "--start-loss", "1.4", "--iterations", "2", "--steps", "5", "--out", str(out)])
    assert code == 0 and out.is_file()
    assert "written to" in capsys.readouterr().out
    new = ws.load(out)
    assert ws.load_spec(out) == trained.spec
    net = CFG.module()
    net.load_state_dict(new, strict=True)
    assert torch.isfinite(net(torch.randn(2, *CFG.in_shape))).all()
    assert any(not torch.equal(new[k], start[k]) for k in start)
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["weightspace.generate.target_loss"] == "0.3"


def _one_line_error(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def test_existing_output_is_refused(trained, tmp_path, capsys):
    gen, init, _ = _files(trained, tmp_path)
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"keep me")
    code = main(["generate", "--model", str(gen), "--from", str(init), "--target-loss", "0.3", "--out", str(out)])
    _one_line_error(capsys, code, "OutputExistsError", str(out))
    assert out.read_bytes() == b"keep me"


def test_mismatched_checkpoint_names_the_key(trained, tmp_path, capsys):
    gen, _, start = _files(trained, tmp_path)
    wrong_shape = dict(start, **{"3.weight": torch.zeros(6, 7)})
    bad = ws.save(wrong_shape, tmp_path / "bad.safetensors")
    code = main(["generate", "--model", str(gen), "--from", str(bad), "--target-loss", "0.3",
                 "--out", str(tmp_path / "o1.safetensors")])
    _one_line_error(capsys, code, "ShapeMismatchError", "'3.weight'")
    renamed = {("extra." + k if k == "5.bias" else k): v for k, v in start.items()}
    bad2 = ws.save(renamed, tmp_path / "bad2.safetensors")
    code = main(["generate", "--model", str(gen), "--from", str(bad2), "--target-loss", "0.3",
                 "--out", str(tmp_path / "o2.safetensors")])
    _one_line_error(capsys, code, "KeyMismatchError", "5.bias")
    assert not (tmp_path / "o1.safetensors").exists() and not (tmp_path / "o2.safetensors").exists()


def test_pickles_are_not_read(trained, tmp_path, capsys):
    gen, _, start = _files(trained, tmp_path)
    torch.save(start, tmp_path / "init.pt")
    code = main(["generate", "--model", str(gen), "--from", str(tmp_path / "init.pt"), "--target-loss", "0.3",
                 "--out", str(tmp_path / "o.safetensors")])
    _one_line_error(capsys, code, "CheckpointError", "never loads pickles")
