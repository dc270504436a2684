"""`weightspace inspect`: inferred path on a safetensors MLP, traced path on a module, JSON out, errors."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import torch
from torch import nn

import weightspace as ws
from weightspace.cli.main import main


def _mlp_file(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 1))
    path = tmp_path / "mlp.safetensors"
    ws.save(model.state_dict(), path)
    return model, path


def test_inspect_safetensors_mlp_inferred(tmp_path, capsys):
    _, path = _mlp_file(tmp_path)
    out_json = tmp_path / "spec.json"
    assert main(["inspect", str(path), "--activation", "tanh", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "inferred" in text and "16" in text and "12" in text
    spec = ws.WeightSpec.from_json(out_json.read_text())
    assert sorted(g.size for g in spec.groups.values()) == [12, 16]
    assert all(g.extra == ("sign",) for g in spec.groups.values())
    assert spec.provenance == "inferred"


def test_inspect_module_factory_traced(tmp_path, capsys, monkeypatch):
    (tmp_path / "my_factory.py").write_text(textwrap.dedent(
        """
        import torch
        from torch import nn

        def build():
            torch.manual_seed(0)
            model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
            return model.eval(), (torch.randn(2, 3, 6, 6),)
        """
    ))
    monkeypatch.syspath_prepend(str(tmp_path))
    out_json = tmp_path / "spec.json"
    assert main(["inspect", "my_factory:build", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "traced" in text and "verified" in text
    spec = ws.WeightSpec.from_json(out_json.read_text())
    assert [g.size for g in spec.groups.values()] == [8]
    assert spec.verified is True
    # the BN running stats are members of the channel group
    (name,) = spec.groups
    assert {"1.running_mean", "1.running_var"} <= {m.key for m in spec.members(name)}


def test_inspect_bundled_example(capsys):
    assert main(["inspect", "--example", "siren-file"]) == 0
    text = capsys.readouterr().out
    assert "siren" in text and "sign" in text


def test_inspect_errors_exit_2_and_leave_files_alone(tmp_path, capsys):
    _, path = _mlp_file(tmp_path)
    data = path.read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "CheckpointError" in err and "bad.safetensors" in err
    assert bad.read_bytes() == data[: len(data) // 2]
    assert path.read_bytes() == data


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "weightspace.cli.main", "inspect", "--example", "mlp"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "permutation groups" in result.stdout
