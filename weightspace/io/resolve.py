"""Decide which file(s) a user-given checkpoint path means, and in which format.

A path may name a weights file, a sharded-checkpoint index, or a folder in the
Hugging Face layout (`config.json` next to `model.safetensors`, an index, or
`pytorch_model.bin`). Safetensors is preferred over pickles whenever both exist.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError

SAFETENSORS = "safetensors"
TORCH = "torch"
INDEX = "index"
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
INDEX_SUFFIX = ".index.json"
SUPPORTED = (
    ".safetensors, sharded '*.safetensors.index.json' / '*.bin.index.json', "
    f"torch pickles ({', '.join(TORCH_SUFFIXES)}), or a folder holding one of these"
)
# Hugging Face file names, in order of preference.
FOLDER_PREFERENCE = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


@dataclass(frozen=True)
class Source:
    """One resolved checkpoint: the file to open and how to read it."""

    path: Path
    kind: str


def kind_of(path: Path) -> str:
    """The format of a weights file, from its name; CheckpointError when unknown."""
    name = path.name.lower()
    if name.endswith(INDEX_SUFFIX):
        return INDEX
    if name.endswith(".safetensors"):
        return SAFETENSORS
    if name.endswith(TORCH_SUFFIXES):
        return TORCH
    suffix = path.suffix or "(no extension)"
    raise CheckpointError(path, f"unknown checkpoint format {suffix!r}; supported: {SUPPORTED}")


def _only(candidates: list[Path], folder: Path, what: str) -> Path | None:
    """The single candidate, None if there is none, CheckpointError if it is ambiguous."""
    if len(candidates) > 1:
        names = sorted(p.name for p in candidates)
        raise CheckpointError(folder, f"several {what} files and no standard name to prefer: {names}")
    return candidates[0] if candidates else None


def _from_folder(folder: Path) -> Source:
    """The weights a folder holds, preferring safetensors and standard names."""
    for name in FOLDER_PREFERENCE:
        candidate = folder / name
        if candidate.is_file():
            return Source(candidate, kind_of(candidate))
    files = [p for p in folder.iterdir() if p.is_file()]
    for what, pattern in (
        ("safetensors index", lambda n: n.endswith(".safetensors" + INDEX_SUFFIX)),
        ("safetensors", lambda n: n.endswith(".safetensors")),
        ("pickle index", lambda n: n.endswith(INDEX_SUFFIX)),
        ("torch pickle", lambda n: n.endswith(TORCH_SUFFIXES)),
    ):
        found = _only([p for p in files if pattern(p.name.lower())], folder, what)
        if found is not None:
            return Source(found, kind_of(found))
    raise CheckpointError(folder, f"folder holds no weights; expected {SUPPORTED}")


def resolve(path: str | Path) -> Source:
    """The file and format a checkpoint path refers to."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "no such file or folder")
    if path.is_dir():
        return _from_folder(path)
    kind = kind_of(path)
    if not path.is_file():
        raise CheckpointError(path, "not a regular file (a FIFO, device or socket cannot be a checkpoint)")
    return Source(path, kind)
