"""`weightspace transfer`: checkpoints in, one transferred checkpoint per source checkpoint out
(spec and permutation in the metadata); bad input is one line and exit 2, inputs never overwritten."""
from __future__ import annotations

import pytest
import torch

from weightspace.cli.main import main
from weightspace.io import load, load_spec
from weightspace.spec import GroupElement

from tests.align.factories import digits_mlp

MODEL = "tests.align.factories:digits_mlp"
DATA = "tests.align.factories:digits_test_batches"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Three checkpoints of a tiny SGD run and an independent new init, as safetensors."""
    from weightspace.io import save
    from tests.align.digits import digits

    root = tmp_path_factory.mktemp("transfer")
    x, y, _, _ = digits()
    torch.manual_seed(0)
    model, _ = digits_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    paths = []
    for s in range(3):
        paths.append(root / f"step{s}.safetensors")
        save(model.state_dict(), paths[-1])
        for _ in range(10):
            loss = torch.nn.functional.cross_entropy(model(x[:300]), y[:300])
            opt.zero_grad()
            loss.backward()
            opt.step()
    init = root / "init.safetensors"
    save(digits_mlp()[0].state_dict(), init)
    return paths, init


def _line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("method", ["fgmt", "naive"])
def test_transfer_writes_one_checkpoint_per_source_checkpoint(tmp_path, capsys, checkpoints, method):
    paths, init = checkpoints
    out = tmp_path / "out"
    argv = ["transfer", *map(str, paths), "--init", str(init), "--model", MODEL, "--data", DATA,
            "--method", method, "--out", str(out)]
    assert main(argv) == 0
    assert "3 transferred checkpoints written" in capsys.readouterr().out
    files = sorted(out.glob("*.safetensors"))
    assert [f.name for f in files] == [f"transferred-{s:04d}.safetensors" for s in range(3)]
    first = load(files[0])
    assert all(torch.equal(first[k], v) for k, v in load(init).items()), "checkpoint 0 is the new init"
    assert load_spec(files[-1]) is not None
    from safetensors import safe_open

    with safe_open(str(files[-1]), framework="pt") as f:
        g = GroupElement.from_json(f.metadata()["weightspace.align.permutation"])
        assert f.metadata()["weightspace.transfer.method"] == method
    moved = sum(int((p != torch.arange(len(p))).sum()) for p in g.perms.values())
    assert (moved == 0) == (method == "naive")
    model, _ = digits_mlp()
    model.load_state_dict(load(files[-1]))


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, checkpoints):
    paths, init = checkpoints
    common = ["--model", MODEL, "--data", DATA]
    clash = tmp_path / "clash"
    clash.mkdir()
    named_like_output = clash / "transferred-0001.safetensors"
    named_like_output.write_bytes(init.read_bytes())
    assert main(["transfer", *map(str, paths), "--init", str(named_like_output), *common, "--out", str(clash)]) == 2
    assert "OutputIsInputError" in _line(capsys)
    assert named_like_output.read_bytes() == init.read_bytes() and len(list(clash.iterdir())) == 1
    assert main(["transfer", *map(str, paths), "--init", str(init), "--model", MODEL, "--out", str(tmp_path / "o")]) == 2
    assert "needs --data" in _line(capsys)
    assert main(["transfer", str(paths[0]), "--init", str(init), *common, "--out", str(tmp_path / "o")]) == 2
    assert "at least 2 checkpoints" in _line(capsys)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{trunc")
    assert main(["transfer", str(paths[0]), str(bad), "--init", str(init), *common, "--out", str(tmp_path / "o")]) == 2
    assert "bad.safetensors" in _line(capsys)
    assert not (tmp_path / "o").exists(), "nothing is written on bad input"
