"""`weightspace inspect` on hostile input: untrusted text printed literally, outputs never
over inputs, paths with ':' never imported, stored specs checked; exit 2 with one line."""
from __future__ import annotations

import json
import os
import sys

import pytest
import safetensors.torch
import torch

import weightspace as ws
from weightspace.cli.main import main
from weightspace.cli.text import safe_text

from ..io.test_bad_input import digest
from ..io.test_roundtrip import mlp_spec, mlp_state_dict

HOSTILE = "[/bold]\x1b[31mred\x1b]0;title\x07\u202egnp.exe\r\n[link=file:///etc]x"


def _one_error_line(capsys, name: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err, err
    return err


def test_safe_text_escapes_markup_and_strips_controls():
    shown = safe_text(HOSTILE)
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown and "\n" not in shown
    assert shown.startswith("\\[/bold]") and "\\[link=file:///etc]" in shown


def _hostile_spec_file(tmp_path):
    d = mlp_spec().to_dict()
    old = d["groups"][0]["name"]
    d["groups"][0]["name"] = HOSTILE
    for e in d["entries"]:
        e["axes"] = [[[HOSTILE if f[0] == old else f[0], f[1]] for f in axis] for axis in e["axes"]]
    d["notes"] = [HOSTILE]
    d["frozen"] = [[d["entries"][0]["key"], 1, HOSTILE]]
    path = tmp_path / "m[bold]\x1b[31m.safetensors"
    safetensors.torch.save_file(mlp_state_dict(), str(path), metadata={"weightspace.spec": json.dumps(d)})
    return path


def test_inspect_prints_hostile_names_literally(tmp_path, capsys):
    path = _hostile_spec_file(tmp_path)
    before = digest(path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    flat = out.replace("\n", "")  # rich wraps long lines at the console width
    assert "[/bold]" in out and "note: [/bold]" in out and "m[bold][31m.safete" in flat
    assert digest(path) == before


def test_inspect_json_over_its_own_input_is_refused(tmp_path, capsys):
    path = tmp_path / "m.safetensors"
    ws.save(mlp_state_dict(), path, spec=mlp_spec())
    before = digest(path)
    assert main(["inspect", str(path), "--json", str(path)]) == 2
    _one_error_line(capsys, "OutputIsInputError")
    link = tmp_path / "hard.json"
    os.link(path, link)
    assert main(["inspect", str(path), "--json", str(link)]) == 2
    _one_error_line(capsys, "OutputIsInputError")
    assert main(["inspect", str(tmp_path), "--json", str(path)]) == 2
    _one_error_line(capsys, "OutputIsInputError")
    assert digest(path) == before


def test_inspect_json_over_a_shard_is_refused(tmp_path, capsys):
    sd = mlp_state_dict()
    safetensors.torch.save_file(sd, str(tmp_path / "a.safetensors"))
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {k: "a.safetensors" for k in sd}}))
    before = digest(tmp_path / "a.safetensors")
    assert main(["inspect", str(index), "--json", str(tmp_path / "a.safetensors")]) == 2
    _one_error_line(capsys, "OutputIsInputError")
    assert digest(tmp_path / "a.safetensors") == before


@pytest.mark.parametrize("target", ["runs/os:getcwd.safetensors", "os:system.pt", "./os:getcwd", "os.path:join x"])
def test_missing_path_with_colon_is_not_imported(tmp_path, capsys, monkeypatch, target):
    monkeypatch.chdir(tmp_path)
    imported = set(sys.modules)
    assert main(["inspect", target]) == 2
    _one_error_line(capsys, "CheckpointError")
    assert set(sys.modules) - imported == set()


def test_stored_spec_that_does_not_match_the_tensors_is_reported(tmp_path, capsys):
    sd = mlp_state_dict()
    path = tmp_path / "m.safetensors"
    wrong = {k: torch.zeros(*v.shape[:-1], v.shape[-1] + 1) if v.dim() == 2 else v for k, v in sd.items()}
    safetensors.torch.save_file(wrong, str(path), metadata={"weightspace.spec": mlp_spec().to_json()})
    assert main(["inspect", str(path)]) == 2
    err = _one_error_line(capsys, "ShapeMismatchError")
    assert str(path) in err
    missing = tmp_path / "k.safetensors"
    safetensors.torch.save_file({"other": torch.zeros(1)}, str(missing), metadata={"weightspace.spec": mlp_spec().to_json()})
    assert main(["inspect", str(missing)]) == 2
    _one_error_line(capsys, "KeyMismatchError")


def test_hostile_spec_group_size_exits_2(tmp_path, capsys):
    d = mlp_spec().to_dict()
    d["groups"].append({"name": "huge", "size": 2**40, "kind": "unit"})
    path = tmp_path / "m.safetensors"
    safetensors.torch.save_file(mlp_state_dict(), str(path), metadata={"weightspace.spec": json.dumps(d)})
    assert main(["inspect", str(path)]) == 2
    _one_error_line(capsys, "SpecError")
