"""`load` and `load_spec`: one safe entry point for every checkpoint layout we support.

Key order: the returned dict lists keys in the order the file gives them. For
safetensors that is alphabetical (the format sorts names), so key order carries no
structure and nothing in weightspace may rely on it; specs name keys explicitly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, SpecError
from ..spec import WeightSpec
from .paths import inside
from .resolve import INDEX, SAFETENSORS, kind_of, resolve
from .safetensors_file import SPEC_KEY, load_safetensors, read_metadata
from .torch_file import load_torch
from .unwrap import strip_wrapper_prefixes, unwrap
from .validate import parse_json, read_json


def _read_index(path: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """The (weight_map, metadata) of a sharded-checkpoint index file."""
    index = read_json(path, "index file")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(path, "index has no 'weight_map' of {key: shard file}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
        raise CheckpointError(path, "index 'weight_map' must map key names to shard file names")
    metadata = index.get("metadata")
    return weight_map, metadata if isinstance(metadata, dict) else {}


def _shard_path(index_path: Path, name: str) -> Path:
    """A shard named by an index, which must be a regular file inside the index's folder."""
    return inside(index_path.parent, name, "shard listed in the index", source=index_path)


def _load_index(path: Path, map_location: Any, mmap: bool) -> dict[str, torch.Tensor]:
    """Every tensor of a sharded checkpoint, in the index's key order."""
    weight_map, _ = _read_index(path)
    by_shard: dict[str, list[str]] = {}
    for key, shard in weight_map.items():
        by_shard.setdefault(shard, []).append(key)
    loaded: dict[str, torch.Tensor] = {}
    for name, keys in by_shard.items():
        shard = _shard_path(path, name)
        if kind_of(shard) == SAFETENSORS:
            loaded.update(load_safetensors(shard, map_location, keys))
            continue
        tensors = unwrap(load_torch(shard, map_location, mmap), shard)
        missing = [k for k in keys if k not in tensors]
        if missing:
            raise CheckpointError(shard, f"keys the index lists for this shard are not in it: {missing[:8]}")
        loaded.update((k, tensors[k]) for k in keys)
    return {k: loaded[k] for k in weight_map}


def load(path: str | Path, *, map_location: Any = "cpu", mmap: bool = True) -> dict[str, torch.Tensor]:
    """Load a flat `{key: tensor}` state dict from any supported checkpoint.

    Accepts a `.safetensors` file, a sharded index (`*.safetensors.index.json`,
    `*.bin.index.json`), a torch pickle (`.pt/.pth/.bin/.ckpt`, read with
    `weights_only=True` only) or a Hugging Face style folder (safetensors preferred).
    Training wrappers (`state_dict`, `model`, ..., nested dicts) are unwrapped and
    `module.` / `_orig_mod.` prefixes stripped when every key has one. Tied weights
    written by `save` come back as one tensor object under each name.

    `mmap` memory-maps torch zip files; safetensors files are always memory-mapped.
    Raises CheckpointError (missing, unknown, corrupt or tensor-free file) or
    UnsafePickleError (a pickle that would run code; it is never run).
    """
    source = resolve(path)
    if source.kind == SAFETENSORS:
        tensors = load_safetensors(source.path, map_location)
    elif source.kind == INDEX:
        tensors = _load_index(source.path, map_location, mmap)
    else:
        return unwrap(load_torch(source.path, map_location, mmap), source.path)
    if not tensors:
        raise CheckpointError(source.path, "holds no tensors")
    return strip_wrapper_prefixes(tensors)


def checkpoint_files(path: str | Path) -> list[Path]:
    """Every file reading the checkpoint at `path` opens (the file itself, or an index and its shards)."""
    source = resolve(path)
    if source.kind != INDEX:
        return [source.path]
    weight_map, _ = _read_index(source.path)
    return [source.path, *(_shard_path(source.path, name) for name in dict.fromkeys(weight_map.values()))]


def _spec_text(path: Path, kind: str) -> str | None:
    """The spec JSON stored with a checkpoint, if any."""
    if kind == SAFETENSORS:
        return read_metadata(path).get(SPEC_KEY)
    if kind != INDEX:
        return None
    weight_map, metadata = _read_index(path)
    text = metadata.get(SPEC_KEY)
    if isinstance(text, str):
        return text
    first = _shard_path(path, next(iter(weight_map.values())))
    return read_metadata(first).get(SPEC_KEY) if kind_of(first) == SAFETENSORS else None


def load_spec(path: str | Path) -> WeightSpec | None:
    """The WeightSpec stored in a checkpoint's safetensors metadata, or None if absent."""
    source = resolve(path)
    text = _spec_text(source.path, source.kind)
    if text is None:
        return None
    try:
        doc = parse_json(text, source.path, "the JSON", lambda _path, reason: SpecError(reason))
        return WeightSpec.from_dict(doc)
    except SpecError as err:
        raise SpecError(f"{source.path}: spec stored under {SPEC_KEY!r} is invalid: {err}") from err
