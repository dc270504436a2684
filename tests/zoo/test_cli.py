"""The `zoo` subcommand end to end, through our own argparse parser as main.py builds it."""
from __future__ import annotations

import argparse
import json

import pytest

from zoo import Zoo, cli


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="weightspace")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


def test_build_info_diagnose(tmp_path, capsys):
    out = tmp_path / "z"
    assert _run(["zoo", "build", "inr", "--out", str(out), "--limit", "30", "--steps", "30", "--chunk", "16", "--quiet", "--hidden", "16", "16"]) == 0
    text = capsys.readouterr().out
    assert "30 networks in 2 shards" in text and "psnr" in text
    zoo = Zoo(out)
    assert zoo.manifest["architecture"]["widths"] == [2, 16, 16, 1]
    assert "--limit" in zoo.manifest["build"]["command"]
    assert _run(["zoo", "info", str(out)]) == 0
    assert "checksums verified" in capsys.readouterr().out
    assert _run(["zoo", "diagnose", str(out), "--classifier", "logreg", "--json", str(tmp_path / "d.json")]) == 0
    d = json.loads((tmp_path / "d.json").read_text())
    assert set(d["scores"]) == {"flattened weights", "statistics", "probes", "reconstructions", "originals"}
    assert all(0 <= v <= 1 for v in d["scores"].values())
    assert d["movement"]["2.weight"] > 0


def test_build_classifiers_cli(tmp_path, capsys):
    out = tmp_path / "c"
    assert _run(["zoo", "build", "classifiers", "--out", str(out), "--arch", "mlp", "--count", "4", "--width", "8", "--epochs", "2", "--quiet"]) == 0
    assert "test_acc" in capsys.readouterr().out
    assert len(Zoo(out)) == 4


def test_main_reports_errors(tmp_path, capsys):
    assert cli.main(["info", str(tmp_path)]) == 2
    assert "missing zoo manifest" in capsys.readouterr().err


def test_unknown_dataset(tmp_path):
    from zoo import ZooError

    with pytest.raises(ZooError, match="unknown dataset"):
        _run(["zoo", "build", "inr", "--out", str(tmp_path), "--dataset", "imagenet", "--quiet"])
