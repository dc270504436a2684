"""Bad input raises a named error naming the file (and key), and never changes the file."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shlex
from pathlib import Path

import pytest
import safetensors.torch
import torch

from weightspace.errors import CheckpointError, KeyMismatchError, ShapeMismatchError, UnsafePickleError
from weightspace.io import load, load_spec, save

from .test_roundtrip import mlp_spec, mlp_state_dict


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def raises_unchanged(path: Path, error: type, *needles: str, call=None):
    """Run `call` (default: load(path)); assert the error, its message, and the file's bytes."""
    before = digest(path)
    with pytest.raises(error) as info:
        (call or (lambda: load(path)))()
    message = str(info.value)
    for needle in (str(path), *needles):
        assert needle in message, (needle, message)
    assert digest(path) == before
    return info.value


class Payload:
    """Unpickling this would run a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def test_missing_path(tmp_path):
    with pytest.raises(CheckpointError, match="no such file or folder") as info:
        load(tmp_path / "absent.safetensors")
    assert "absent.safetensors" in str(info.value)


def test_unknown_extension_names_supported_formats(tmp_path):
    path = tmp_path / "weights.npz"
    path.write_bytes(b"\x00" * 16)
    raises_unchanged(path, CheckpointError, ".npz", ".safetensors", ".pt")


def test_empty_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no weights"):
        load(tmp_path)


def test_truncated_safetensors(tmp_path):
    path = tmp_path / "cut.safetensors"
    safetensors.torch.save_file({"w": torch.randn(1000)}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    raises_unchanged(path, CheckpointError, "truncated")
    raises_unchanged(path, CheckpointError, "truncated", call=lambda: load_spec(path))


@pytest.mark.parametrize("name", ["junk.safetensors", "junk.pt", "junk.bin"])
def test_garbage_bytes(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x80\x02not a checkpoint at all" * 20)
    raises_unchanged(path, CheckpointError)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_truncated_torch_file(tmp_path, zip_format):
    path = tmp_path / "cut.pt"
    torch.save({"w": torch.randn(1000)}, path, _use_new_zipfile_serialization=zip_format)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    err = raises_unchanged(path, CheckpointError)
    assert not isinstance(err, UnsafePickleError)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("how", ["zip", "legacy", "protocol4"])
def test_unsafe_pickle_is_refused_and_never_run(tmp_path, how):
    marker = tmp_path / "PAYLOAD_RAN"
    path = tmp_path / "evil.pt"
    if how == "protocol4":
        path.write_bytes(pickle.dumps({"x": Payload(marker)}, protocol=4))
    else:
        obj = {"w": torch.zeros(2), "x": Payload(marker)}
        torch.save(obj, path, _use_new_zipfile_serialization=how == "zip")
    err = raises_unchanged(path, UnsafePickleError, "system")
    assert not marker.exists()
    assert any(g in err.globals for g in ("posix.system", "os.system", "nt.system"))
    assert all(not g.startswith("torch.") for g in err.globals)


def test_unsafe_pickle_names_main_class(tmp_path):
    path = tmp_path / "evil.pth"
    path.write_bytes(b"\x80\x02c__main__\nEvil\nq\x00)\x81q\x01.")
    err = raises_unchanged(path, UnsafePickleError, "__main__.Evil")
    assert err.globals == ["__main__.Evil"]


def test_unsafe_shard_of_a_sharded_checkpoint(tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    torch.save({"w": torch.zeros(2), "x": Payload(marker)}, tmp_path / "shard.bin")
    index = tmp_path / "pytorch_model.bin.index.json"
    index.write_text(json.dumps({"weight_map": {"w": "shard.bin"}}))
    raises_unchanged(tmp_path / "shard.bin", UnsafePickleError, call=lambda: load(index))
    assert not marker.exists()


def test_checkpoint_without_tensors_lists_top_level_keys(tmp_path):
    path = tmp_path / "meta.ckpt"
    torch.save({"epoch": 3, "hyper_parameters": {"lr": 0.1}}, path)
    raises_unchanged(path, CheckpointError, "no tensors", "epoch", "hyper_parameters")


def test_index_with_missing_shard(tmp_path):
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"w": "model-00001-of-00001.safetensors"}}))
    raises_unchanged(index, CheckpointError, "model-00001-of-00001.safetensors", "missing")


def test_index_key_absent_from_its_shard(tmp_path):
    shard = tmp_path / "a.safetensors"
    safetensors.torch.save_file({"w": torch.ones(2)}, str(shard))
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"w": "a.safetensors", "v": "a.safetensors"}}))
    raises_unchanged(shard, CheckpointError, "'v'", call=lambda: load(index))


def test_save_missing_key_vs_spec_writes_nothing(tmp_path):
    path = tmp_path / "m.safetensors"
    save(mlp_state_dict(seed=1), path)
    sd = mlp_state_dict()
    del sd["1.weight"]
    raises_unchanged(path, KeyMismatchError, "1.weight", call=lambda: save(sd, path, spec=mlp_spec()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_save_shape_mismatch_vs_spec_writes_nothing(tmp_path):
    path = tmp_path / "m.safetensors"
    save(mlp_state_dict(seed=1), path)
    sd = mlp_state_dict()
    sd["0.bias"] = torch.zeros(5)
    err = raises_unchanged(path, ShapeMismatchError, "0.bias", call=lambda: save(sd, path, spec=mlp_spec()))
    assert err.expected == (4,) and err.got == (5,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_loaded_file_checked_against_spec(tmp_path):
    path = tmp_path / "m.pt"
    sd = mlp_state_dict()
    sd["1.weight"] = torch.zeros(2, 5)
    torch.save(sd, path)
    loaded = load(path)

    def check():
        mlp_spec().check(loaded, where=str(path))

    raises_unchanged(path, ShapeMismatchError, "1.weight", call=check)
    del loaded["1.weight"]
    raises_unchanged(path, KeyMismatchError, "1.weight", call=check)

