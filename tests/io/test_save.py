"""`save` is atomic: a failure mid-write leaves the old file intact and no temp files."""
from __future__ import annotations

import hashlib

import pytest
import safetensors.torch
import torch

from weightspace.errors import CheckpointError, SpecError
from weightspace.io import load, load_spec, save

from .test_roundtrip import assert_same, mlp_spec, mlp_state_dict


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fail_midway(tensors, filename, metadata=None):
    """Stand-in for safetensors' writer that dies after writing part of the file."""
    with open(filename, "wb") as f:
        f.write(b"\x00" * 1000)
    raise OSError("disk full (simulated)")


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = save(mlp_state_dict(seed=1), tmp_path / "m.safetensors")
    before = digest(path)
    monkeypatch.setattr(safetensors.torch, "save_file", fail_midway)
    with pytest.raises(OSError, match="simulated"):
        save(mlp_state_dict(seed=2), path, spec=mlp_spec())
    assert digest(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    monkeypatch.undo()
    assert_same(load(path), mlp_state_dict(seed=1))


def test_failed_write_to_new_path_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(safetensors.torch, "save_file", fail_midway)
    with pytest.raises(OSError):
        save(mlp_state_dict(), tmp_path / "new.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_interrupt_mid_write_cleans_up(tmp_path, monkeypatch):
    def interrupted(tensors, filename, metadata=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save(mlp_state_dict(), tmp_path / "new.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_content(tmp_path):
    path = save(mlp_state_dict(seed=1), tmp_path / "m.safetensors")
    save(mlp_state_dict(seed=2), path)
    assert_same(load(path), mlp_state_dict(seed=2))
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_save_creates_parent_folders(tmp_path):
    path = save(mlp_state_dict(), tmp_path / "a" / "b" / "m.safetensors")
    assert path.is_file()


def test_save_requires_safetensors_name(tmp_path):
    with pytest.raises(CheckpointError, match="m.pt"):
        save(mlp_state_dict(), tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "state_dict, error",
    [
        ({"w": [1.0, 2.0]}, TypeError),
        ({1: torch.ones(1)}, TypeError),
        ({}, ValueError),
        ([torch.ones(1)], TypeError),
    ],
)
def test_save_rejects_non_state_dicts(tmp_path, state_dict, error):
    with pytest.raises(error, match="m.safetensors"):
        save(state_dict, tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("metadata", [{"weightspace.spec": "{}"}, {"weightspace.aliases": "{}"}, {"n": 3}])
def test_save_rejects_bad_metadata(tmp_path, metadata):
    with pytest.raises((TypeError, ValueError)):
        save(mlp_state_dict(), tmp_path / "m.safetensors", metadata=metadata)
    assert list(tmp_path.iterdir()) == []


def test_parameters_with_grad_are_saved(tmp_path):
    layer = torch.nn.Linear(3, 2)
    got = load(save(layer.state_dict(keep_vars=True), tmp_path / "m.safetensors"))
    assert_same(got, {k: v.detach() for k, v in layer.state_dict().items()})


def test_load_spec_absent_and_non_safetensors(tmp_path):
    assert load_spec(save(mlp_state_dict(), tmp_path / "m.safetensors")) is None
    torch.save(mlp_state_dict(), tmp_path / "m.pt")
    assert load_spec(tmp_path / "m.pt") is None


def test_load_spec_invalid_json_names_file(tmp_path):
    path = tmp_path / "m.safetensors"
    safetensors.torch.save_file(mlp_state_dict(), str(path), metadata={"weightspace.spec": "{not json"})
    with pytest.raises(SpecError, match="m.safetensors"):
        load_spec(path)


def test_load_spec_from_folder(tmp_path):
    save(mlp_state_dict(), tmp_path / "model.safetensors", spec=mlp_spec())
    assert load_spec(tmp_path) == mlp_spec()
