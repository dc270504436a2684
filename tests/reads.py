"""Record every file a block of code opens, to prove nothing outside a folder was read."""
from __future__ import annotations

import builtins
import io
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

import weightspace.io.safetensors_file as st_file
import weightspace.io.torch_file as torch_file


@contextmanager
def recorded_reads(monkeypatch) -> Iterator[list[Path]]:
    """Paths opened through open/os.open/safetensors/torch.load while the block runs (resolved)."""
    opened: list[Path] = []

    def note(path) -> None:
        if isinstance(path, (str, os.PathLike)):
            opened.append(Path(os.fsdecode(path)).resolve())

    def wrap(fn):
        def spy(path, *args, **kwargs):
            note(path)
            return fn(path, *args, **kwargs)
        return spy

    monkeypatch.setattr(builtins, "open", wrap(builtins.open))
    monkeypatch.setattr(io, "open", wrap(io.open))
    monkeypatch.setattr(os, "open", wrap(os.open))
    monkeypatch.setattr(st_file, "safe_open", wrap(st_file.safe_open))
    monkeypatch.setattr(torch_file.torch, "load", wrap(torch.load))
    try:
        yield opened
    finally:
        monkeypatch.undo()


def outside(opened: list[Path], root: Path) -> list[Path]:
    """The recorded paths that do not lie under `root`."""
    root = Path(root).resolve()
    return [p for p in opened if p != root and root not in p.parents]
