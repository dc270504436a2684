"""`weightspace align` / `inspect` on a user's own factory in the current folder: tuple
outputs, regression targets, `--loss`, BatchNorm statistics kept unless asked, `--plot`
without data, parser warnings shown."""
from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from safetensors import safe_open

import weightspace as ws
from weightspace.align.record import METADATA_KEY
from weightspace.spec import GroupElement
from weightspace.cli.main import main

FACTORY = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self, odd=False):
            super().__init__()
            self.a, self.bn, self.b = nn.Linear(4, 16), nn.BatchNorm1d(16), nn.Linear(16, 2)
            self.odd = odd

        def forward(self, x):
            h = torch.relu(self.bn(self.a(x)))
            if self.odd:
                h = torch.special.bessel_j0(h)
            return self.b(h), {"energy": h.pow(2).mean(-1)}


    def build():
        torch.manual_seed(0)
        return Net().eval(), (torch.randn(8, 4),)


    def odd():
        torch.manual_seed(0)
        return Net(odd=True).eval(), (torch.randn(8, 4),)


    def data():
        g = torch.Generator().manual_seed(1)
        x = torch.randn(32, 4, generator=g)
        return [(x, torch.randn(32, 2, generator=g))]


    def bad_targets():
        return [(torch.randn(32, 4), torch.randn(32))]


    def l1(out, target):
        return (out - target).abs().mean()
    """
)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A current folder holding user_factory.py and two checkpoints of its model."""
    (tmp_path / "user_factory.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "user_factory", raising=False)
    for name, seed in (("a", 1), ("b", 2)):
        torch.manual_seed(seed)
        sd = {"a.weight": torch.randn(16, 4), "a.bias": torch.randn(16), "bn.weight": 1 + 0.1 * torch.randn(16),
              "bn.bias": torch.randn(16), "bn.running_mean": torch.randn(16), "bn.running_var": 0.5 + torch.rand(16),
              "bn.num_batches_tracked": torch.tensor(10), "b.weight": torch.randn(2, 16), "b.bias": torch.randn(2)}
        ws.save(sd, tmp_path / f"{name}.safetensors")
    return tmp_path


def _align(*extra):
    return main(["align", "a.safetensors", "b.safetensors", "--model", "user_factory:build", *extra])


def test_factory_in_the_current_folder_imports_for_align_and_inspect(folder, capsys):
    assert main(["inspect", "user_factory:build"]) == 0
    assert "traced" in capsys.readouterr().out
    assert _align() == 0


def test_tuple_outputs_and_regression_targets_are_scored(folder, capsys):
    out = folder / "merged.safetensors"
    assert _align("--data", "user_factory:data", "--out", str(out), "--steps", "3") == 0
    printed = capsys.readouterr().out
    assert "scoring its first output tensor" in printed and "loss barrier" in printed
    assert _align("--data", "user_factory:data", "--loss", "user_factory:l1", "--steps", "3") == 0


def test_a_loss_that_cannot_score_the_outputs_is_a_named_error(folder, capsys):
    assert _align("--data", "user_factory:bad_targets", "--steps", "3") == 2
    assert "--loss auto cannot score" in capsys.readouterr().err
    assert _align("--data", "user_factory:data", "--loss", "hinge") == 2
    assert "--loss 'hinge'" in capsys.readouterr().err


def test_plot_without_data_is_a_named_error(folder, capsys):
    assert _align("--plot", "p.png") == 2
    assert "--plot needs --data" in capsys.readouterr().err
    assert not (folder / "p.png").exists()


def test_batchnorm_statistics_are_kept_unless_asked(folder):
    kept, reset = folder / "kept.safetensors", folder / "reset.safetensors"
    assert _align("--data", "user_factory:data", "--out", str(kept), "--steps", "3") == 0
    assert _align("--data", "user_factory:data", "--out", str(reset), "--steps", "3", "--reset-bn") == 0
    sd_a, merged = ws.load(folder / "a.safetensors"), ws.load(kept)
    spec = ws.load_spec(kept)
    with safe_open(str(kept), "pt") as f:
        g = GroupElement.from_json(f.metadata()[METADATA_KEY])
    aligned = spec.apply(ws.load(folder / "b.safetensors"), g)
    expected = 0.5 * (sd_a["bn.running_mean"] + aligned["bn.running_mean"])
    assert torch.allclose(merged["bn.running_mean"], expected)
    assert not torch.allclose(ws.load(reset)["bn.running_mean"], expected)


def test_missing_batchnorm_statistics_are_recomputed_or_named(folder, capsys):
    for name in ("a", "b"):
        sd = ws.load(folder / f"{name}.safetensors")
        ws.save({k: v for k, v in sd.items() if "running" not in k and "num_batches" not in k},
                folder / f"{name}.safetensors")
    assert _align() == 2
    assert "lack BatchNorm statistics" in capsys.readouterr().err
    assert _align("--data", "user_factory:data", "--steps", "3") == 0
    assert "recomputed on --data" in capsys.readouterr().out


def test_parser_warnings_are_shown(folder, capsys):
    assert main(["align", "a.safetensors", "b.safetensors", "--model", "user_factory:odd"]) == 0
    assert "warning: aten.special_bessel_j0" in capsys.readouterr().out
    assert main(["inspect", "user_factory:odd"]) == 0
    assert "bessel_j0" in capsys.readouterr().out
