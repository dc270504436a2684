"""Hostile checkpoints, each made in the test: nothing read outside the folder, bounded work,
named errors naming the file, and the input left unchanged."""
from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

import weightspace as ws
from weightspace.errors import CheckpointError, OutsideFolderError, SpecError
from weightspace.io import load, load_spec, save
from weightspace.io.save import write_json
from weightspace.io.unwrap import MAX_DEPTH

from ..reads import outside, recorded_reads
from .test_bad_input import digest, raises_unchanged
from .test_roundtrip import mlp_spec, mlp_state_dict


def _sharded(folder: Path, shard_names: dict[str, str]) -> Path:
    """An index in `folder` mapping each key of a 2-tensor state dict to the given shard name."""
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": shard_names}))
    return index


def _outside_file(tmp_path: Path) -> Path:
    secret = tmp_path / "elsewhere" / "secret.safetensors"
    secret.parent.mkdir()
    safetensors.torch.save_file({"w": torch.full((2,), 7.0)}, str(secret))
    return secret


@pytest.mark.parametrize("how", ["symlink", "absolute", "dotdot", "symlinked_dir"])
def test_index_shard_outside_its_folder_is_refused_and_not_read(tmp_path, monkeypatch, how):
    secret = _outside_file(tmp_path)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    name = {"symlink": "shard.safetensors", "absolute": str(secret), "dotdot": "../elsewhere/secret.safetensors",
            "symlinked_dir": "sub/secret.safetensors"}[how]
    if how == "symlink":
        (folder / "shard.safetensors").symlink_to(secret)
    if how == "symlinked_dir":
        (folder / "sub").symlink_to(secret.parent, target_is_directory=True)
    index = _sharded(folder, {"w": name})
    before = digest(secret)
    with recorded_reads(monkeypatch) as opened:
        raises_unchanged(index, OutsideFolderError, "outside")
    assert outside(opened, folder) == []
    assert digest(secret) == before


def test_spec_of_index_with_outside_first_shard_is_refused(tmp_path):
    secret = _outside_file(tmp_path)
    index = _sharded(tmp_path / "ckpt", {"w": str(secret)})
    raises_unchanged(index, OutsideFolderError, call=lambda: load_spec(index))


def test_hugging_face_cache_blob_links_are_allowed(tmp_path):
    """snapshots/<rev>/<file> -> ../../blobs/<hash>: the cache's own layout loads."""
    repo = tmp_path / "models--org--mlp"
    blobs, snap = repo / "blobs", repo / "snapshots" / "abc123"
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    sd = mlp_state_dict()
    keys = sorted(sd)
    halves = {"a.safetensors": keys[: len(keys) // 2], "b.safetensors": keys[len(keys) // 2:]}
    for name, part in halves.items():
        blob = blobs / f"hash-{name}"
        safetensors.torch.save_file({k: sd[k] for k in part}, str(blob))
        (snap / name).symlink_to(Path("../..") / "blobs" / blob.name)
    index_blob = blobs / "hash-index"
    index_blob.write_text(json.dumps({"weight_map": {k: n for n, part in halves.items() for k in part}}))
    (snap / "model.safetensors.index.json").symlink_to(Path("../..") / "blobs" / index_blob.name)
    loaded = load(snap)
    assert sorted(loaded) == keys and all(torch.equal(loaded[k], sd[k]) for k in keys)


def test_fake_hugging_face_blobs_link_is_refused(tmp_path):
    """A crafted snapshots/<rev> folder whose `blobs` is a symlink out of the repo allows nothing."""
    secret = _outside_file(tmp_path)
    repo = tmp_path / "models--evil"
    snap = repo / "snapshots" / "rev"
    snap.mkdir(parents=True)
    (repo / "blobs").symlink_to(secret.parent, target_is_directory=True)
    (snap / "model.safetensors").symlink_to(Path("../..") / "blobs" / secret.name)
    index = _sharded(snap, {"w": "model.safetensors"})
    raises_unchanged(index, OutsideFolderError, "outside")


def test_fifo_named_safetensors_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match="not a regular file") as info:
        load(fifo)
    assert str(fifo) in str(info.value) and time.perf_counter() - started < 5
    index = _sharded(tmp_path, {"w": "pipe.safetensors"})
    with pytest.raises(CheckpointError, match="not a regular file"):
        load(index)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_device_named_safetensors_is_refused(tmp_path):
    zero = tmp_path / "zero.safetensors"
    zero.symlink_to("/dev/zero")
    with pytest.raises(CheckpointError, match="not a regular file"):
        load(zero)
    index = _sharded(tmp_path / "ckpt", {"w": "../zero.safetensors"})
    with pytest.raises(OutsideFolderError):
        load(index)


def _torch_file(tmp_path: Path, obj, name: str = "hostile.pt") -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_dict_that_contains_itself_names_the_file(tmp_path):
    inner: dict = {"w": torch.zeros(2)}
    inner["self"] = inner
    path = _torch_file(tmp_path, {"state_dict": {"model": inner}})
    raises_unchanged(path, CheckpointError, "contains itself")


def test_deep_nesting_is_refused(tmp_path):
    deep: dict = {"w": torch.zeros(1)}
    for _ in range(MAX_DEPTH + 5):
        deep = {"m": deep, "x": 1}
    path = _torch_file(tmp_path, deep)
    raises_unchanged(path, CheckpointError, "deeper")


@pytest.mark.parametrize("leaves", [1, 2000])
def test_shared_subdict_bomb_is_bounded(tmp_path, leaves):
    """40 levels of {a: d, b: d}: a small file naming 2**40 keys fails fast, naming the file."""
    d: dict = {f"w{i}": torch.zeros(1) for i in range(leaves)}
    for _ in range(40):
        d = {"a": d, "b": d}
    path = _torch_file(tmp_path, {"model": d})
    assert leaves > 1 or path.stat().st_size < 4096
    started = time.perf_counter()
    raises_unchanged(path, CheckpointError, "refused")
    assert time.perf_counter() - started < 20


def test_shared_subdicts_that_stay_small_still_load(tmp_path):
    shared = {"w": torch.ones(2)}
    loaded = load(_torch_file(tmp_path, {"model": {"enc": shared, "dec": shared}}))
    assert sorted(loaded) == ["dec.w", "enc.w"]


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[" * 100_000 + "]" * 100_000, "nests deeper"),
        ('{"weight_map": {"w": ', "invalid JSON"),
        (json.dumps({"weight_map": {"w": ["a.safetensors"]}}), "weight_map"),
        (json.dumps({"weight_map": {"w": 3}}), "weight_map"),
        (json.dumps([1, 2]), "weight_map"),
        (json.dumps({"weight_map": {"w": "a\x00.safetensors"}}), "file name"),
    ],
)
def test_malformed_index_json_names_the_file(tmp_path, text, needle):
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(text, encoding="latin-1")
    raises_unchanged(index, CheckpointError, needle)


def test_index_that_is_not_utf8_names_the_file(tmp_path):
    index = tmp_path / "model.safetensors.index.json"
    index.write_bytes(b'{"weight_map": {"\xff": "a.safetensors"}}')
    raises_unchanged(index, CheckpointError, "UTF-8")


def _with_spec_text(tmp_path: Path, spec_dict) -> Path:
    path = tmp_path / "m.safetensors"
    text = spec_dict if isinstance(spec_dict, str) else json.dumps(spec_dict)
    safetensors.torch.save_file(mlp_state_dict(), str(path), metadata={"weightspace.spec": text})
    return path


def _mutated_spec(change) -> dict:
    d = mlp_spec().to_dict()
    change(d)
    return d


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda d: d["groups"].append({"name": "huge", "size": 2**40, "kind": "unit"}), "outside"),
        (lambda d: d["groups"].append({"name": "idle", "size": 4, "kind": "unit"}), "act on no entry"),
        (lambda d: d["groups"][0].update(size=1e9), "integers"),
        (lambda d: d["groups"][0].update(size=d["groups"][0]["size"] + 1), "size"),
        (lambda d: d.update(notes=[["nested"]]), "notes"),
        (lambda d: d.update(entries="nope"), "malformed"),
    ],
)
def test_hostile_stored_spec_is_refused(tmp_path, change, needle):
    path = _with_spec_text(tmp_path, _mutated_spec(change))
    raises_unchanged(path, SpecError, needle, call=lambda: load_spec(path))


def test_deeply_nested_stored_spec_is_refused(tmp_path):
    path = _with_spec_text(tmp_path, "[" * 100_000 + "]" * 100_000)
    raises_unchanged(path, SpecError, "nests deeper", call=lambda: load_spec(path))


def test_write_json_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, {"a": 1})
    os.chmod(path, 0o640)
    write_json(path, {"a": 2})
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and json.loads(path.read_text()) == {"a": 2}


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_new_files_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        saved = save(mlp_state_dict(), tmp_path / "m.safetensors")
        written = write_json(tmp_path / "r.json", {})
    finally:
        os.umask(old)
    for path in (saved, written):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    os.chmod(saved, 0o604)
    ws.save(mlp_state_dict(1), saved)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o604
