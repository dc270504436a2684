"""Read safetensors files: tensors, metadata, and the tied-weight aliases `save` records.

Safetensors refuses to store two names for one tensor, so `save` writes tied weights
once and lists the other names under metadata key `weightspace.aliases`; reading
puts them back as the very same tensor object.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import torch
from safetensors import SafetensorError, safe_open

from ..errors import CheckpointError, InputTypeError

SPEC_KEY = "weightspace.spec"
ALIASES_KEY = "weightspace.aliases"
# What safetensors' Rust core and the OS raise on a file they cannot parse.
_READ_ERRORS = (SafetensorError, OSError, RuntimeError, ValueError, TypeError)


def _device(map_location: Any) -> str:
    """A device string safetensors understands, from torch.load-style `map_location`."""
    if map_location is None:
        return "cpu"
    if isinstance(map_location, (str, torch.device)):
        return str(map_location)
    raise InputTypeError(
        f"map_location for safetensors files must be a device string or torch.device, "
        f"got {type(map_location).__name__}"
    )


def read_metadata(path: Path) -> dict[str, str]:
    """The string metadata in a safetensors header (empty when it has none)."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return dict(f.metadata() or {})
    except _READ_ERRORS as err:
        raise CheckpointError(path, f"corrupt or truncated safetensors file: {err}") from err


def read_aliases(path: Path, metadata: dict[str, str]) -> dict[str, str]:
    """The {alias: kept_key} map `save` recorded, validated."""
    text = metadata.get(ALIASES_KEY)
    if text is None:
        return {}
    try:
        aliases = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(path, f"metadata {ALIASES_KEY!r} is not valid JSON: {err}") from err
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise CheckpointError(path, f"metadata {ALIASES_KEY!r} must map alias names to key names")
    return aliases


def load_safetensors(
    path: Path, map_location: Any = "cpu", keys: Iterable[str] | None = None
) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, in the order the file lists them, aliases restored.

    `keys` restricts the result to those names (a shard of a sharded checkpoint);
    each must be stored in the file or be an alias recorded in it.
    """
    device = _device(map_location)
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            stored = list(f.keys())
            aliases = read_aliases(path, dict(f.metadata() or {}))
            wanted = stored + [a for a in aliases if a not in stored] if keys is None else list(keys)
            present = set(stored)
            source = {k: k if k in present else aliases.get(k) for k in wanted}
            missing = [k for k, s in source.items() if s not in present]
            if missing:
                raise CheckpointError(path, f"keys listed for this file are not in it: {missing[:8]}")
            loaded = {s: f.get_tensor(s) for s in dict.fromkeys(source.values())}
    except _READ_ERRORS as err:
        raise CheckpointError(path, f"corrupt or truncated safetensors file: {err}") from err
    return {k: loaded[source[k]] for k in wanted}
