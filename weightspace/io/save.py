"""`save`: write a state dict (and optionally its spec) as safetensors, atomically.

The file appears complete or not at all: we write a temporary file in the same folder,
fsync it and `os.replace` it over the destination, so a crash or error mid-write never
leaves a half-written checkpoint (nor a stray temporary file).
"""
from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Callable, Mapping

import safetensors.torch
import torch

from ..errors import CheckpointError, ConfigError, InputTypeError
from ..spec import WeightSpec
from .safetensors_file import ALIASES_KEY, SPEC_KEY


def _validated(state_dict: Mapping[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The state dict as a plain dict of detached tensors; InputTypeError/ConfigError if it is not one."""
    if not isinstance(state_dict, Mapping):
        raise InputTypeError(f"{path}: expected a mapping of tensors, got {type(state_dict).__name__}")
    if not state_dict:
        raise ConfigError(f"{path}: nothing to save, the state dict is empty")
    out = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise InputTypeError(f"{path}: state-dict keys must be strings, got {key!r}")
        if not isinstance(value, torch.Tensor):
            raise InputTypeError(f"{path}: {key!r} is a {type(value).__name__}, not a tensor")
        out[key] = value.detach()
    return out


def _user_metadata(metadata: Mapping[str, str] | None, path: Path) -> dict[str, str]:
    """User metadata, checked to be str -> str and clear of the keys weightspace writes."""
    meta = dict(metadata or {})
    for key, value in meta.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InputTypeError(f"{path}: metadata must map str to str, got {key!r}: {type(value).__name__}")
        if key in (SPEC_KEY, ALIASES_KEY):
            raise ConfigError(f"{path}: metadata key {key!r} is reserved for weightspace")
    return meta


def split_tied(tensors: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Contiguous tensors to store once each, and {alias: kept_key} for tied weights.

    Tensors that are the same view of the same memory (tied weights) are stored under
    the first key only. Different views of one storage (slices of a fused weight) are
    copied, since safetensors cannot store overlapping memory.
    """
    kept: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    views: dict[tuple, str] = {}
    storages: set[tuple] = set()
    for key, t in tensors.items():
        if t.numel() == 0 or t.device.type == "meta":
            kept[key] = t.contiguous()
            continue
        storage = (t.device, t.untyped_storage().data_ptr())
        view = (*storage, t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if view in views:
            aliases[key] = views[view]
            continue
        views[view] = key
        kept[key] = t.clone(memory_format=torch.contiguous_format) if storage in storages else t.contiguous()
        storages.add(storage)
    return kept, aliases


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable where the platform allows syncing a directory."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _target_mode(path: Path, tmp: Path) -> int:
    """The mode the written file gets: the replaced file's, else the umask's (read off `tmp`)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return stat.S_IMODE(os.stat(tmp).st_mode)


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Run `write(tmp)` on a fresh temporary file beside `path`, then move it into place.

    On any error the temporary file is removed and `path` is left as it was. The
    result keeps the mode of the file it replaces; a new file gets 0o666 less the
    umask, whatever mode the writer gave its temporary file.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        mode = _target_mode(path, tmp)
        write(tmp)
        os.chmod(tmp, mode)
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_json(path: str | Path, data: Any) -> Path:
    """Write `data` as indented UTF-8 JSON, atomically (results, configs, zoo manifests and sidecars)."""
    path = Path(path)
    text = json.dumps(data, indent=1)
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def save(
    state_dict: Mapping[str, torch.Tensor],
    path: str | Path,
    *,
    spec: WeightSpec | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write `state_dict` to a `.safetensors` file atomically and return its path.

    With `spec`, the state dict is first checked against it (KeyMismatchError,
    ShapeMismatchError; nothing is written then) and the spec's JSON is stored under
    metadata key "weightspace.spec", where `load_spec` finds it. Tied weights are
    stored once and restored under every name by `load`.
    """
    path = Path(path)
    if not path.name.endswith(".safetensors"):
        raise CheckpointError(path, "save writes safetensors; give the file a '.safetensors' name")
    tensors = _validated(state_dict, path)
    if spec is not None:
        spec.check(tensors, where=str(path))
    meta = _user_metadata(metadata, path)
    kept, aliases = split_tied(tensors)
    if spec is not None:
        meta[SPEC_KEY] = spec.to_json()
    if aliases:
        meta[ALIASES_KEY] = json.dumps(aliases)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: safetensors.torch.save_file(kept, str(tmp), metadata=meta))
    return path
