"""A checkpoint read one tensor at a time: safetensors entries are opened lazily, on request.

Safetensors files (single, sharded through an index, or in a Hugging Face folder) are
read with `safetensors.safe_open` per request, so only the requested tensor is copied
into memory; other formats (torch pickles) cannot be read partially and are loaded
whole with `weightspace.io.load`.
"""
from __future__ import annotations

from math import prod
from pathlib import Path

import torch
from safetensors import safe_open

from ..errors import CheckpointError
from ..io import load
from ..io.load import checkpoint_files
from ..io.resolve import INDEX, SAFETENSORS, kind_of, resolve
from ..io.safetensors_file import read_aliases

# bytes per element of each safetensors dtype name
_ITEM_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


class LazyCheckpoint:
    """Keys, sizes and tensors of one checkpoint, each tensor read only when asked for.

    Keys come in the file's order (the index's for sharded checkpoints); tied weights
    that `ws.save` stored once are listed under every name (`alias_of` names the stored one).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        source = resolve(self.path)
        self.files = checkpoint_files(self.path)
        self.folder = self.path if self.path.is_dir() else None
        self._where: dict[str, Path] = {}
        self._aliases: dict[str, str] = {}
        self._bytes: dict[str, int] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._memory: dict[str, torch.Tensor] | None = None
        shards = self.files[1:] if source.kind == INDEX else self.files
        if source.kind in (SAFETENSORS, INDEX) and all(kind_of(f) == SAFETENSORS for f in shards):
            self._scan(shards)
        else:
            self._memory = load(self.path)
            self._bytes = {k: t.numel() * t.element_size() for k, t in self._memory.items()}
            self._shapes = {k: tuple(t.shape) for k, t in self._memory.items()}

    def _scan(self, files: list[Path]) -> None:
        for file in files:
            try:
                with safe_open(str(file), framework="pt", device="cpu") as f:
                    for key in f.keys():
                        if key not in self._where:
                            part = f.get_slice(key)
                            self._where[key] = file
                            self._shapes[key] = tuple(part.get_shape())
                            self._bytes[key] = prod(part.get_shape()) * _ITEM_BYTES.get(part.get_dtype(), 8)
                    aliases = read_aliases(file, dict(f.metadata() or {}))
            except (OSError, RuntimeError, ValueError, TypeError) as err:
                raise CheckpointError(file, f"corrupt or truncated safetensors file: {err}") from err
            self._aliases.update({a: k for a, k in aliases.items() if a not in self._where})
        if not self._where:
            raise CheckpointError(self.path, "holds no tensors")

    def keys(self) -> list[str]:
        if self._memory is not None:
            return list(self._memory)
        return [*self._where, *(a for a in self._aliases if a not in self._where)]

    def alias_of(self, key: str) -> str | None:
        """The stored key `key` is a tied alias of, or None."""
        return self._aliases.get(key)

    def nbytes(self, key: str) -> int:
        return self._bytes[self._aliases.get(key, key)]

    def shape(self, key: str) -> tuple[int, ...]:
        return self._shapes[self._aliases.get(key, key)]

    def total_bytes(self) -> int:
        return sum(self._bytes.values())

    def get(self, key: str) -> torch.Tensor:
        """The tensor stored under `key` (or the key it is tied to), read now."""
        if self._memory is not None:
            return self._memory[key]
        stored = self._aliases.get(key, key)
        file = self._where.get(stored)
        if file is None:
            raise CheckpointError(self.path, f"has no tensor {key!r}")
        try:
            with safe_open(str(file), framework="pt", device="cpu") as f:
                return f.get_tensor(stored)
        except (OSError, RuntimeError, ValueError, TypeError) as err:
            raise CheckpointError(file, f"cannot read {stored!r}: {err}") from err
