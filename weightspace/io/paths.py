"""Paths named inside untrusted files, resolved so that nothing is read outside its folder.

An index, a zoo manifest, a shard sidecar or a splits file names other files. A name
that is absolute, climbs out with `..`, or is a symlink whose target lies outside the
folder could make us read (and report as verified) any file on the machine, so every
such name goes through `inside`. The one layout that links outward on purpose is the
Hugging Face cache: `snapshots/<revision>/<file>` links to `../../blobs/<hash>`, which
is allowed explicitly. `check_output` keeps a command from writing over its inputs.
"""
from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Callable, Iterable

from ..errors import CheckpointError, OutputIsInputError, OutsideFolderError

ErrorFactory = Callable[[Path, str], Exception]


def _hf_blobs(root: Path) -> Path | None:
    """`<repo>/blobs` when `root` is a snapshot folder of the Hugging Face cache.

    `blobs` must be a real folder of the repo: a `blobs` symlink (to `/`, say) would
    otherwise let a crafted folder allow anything.
    """
    repo = root.parent.parent
    blobs = repo / "blobs"
    if root.parent.name != "snapshots" or blobs.is_symlink() or not blobs.is_dir():
        return None
    real = blobs.resolve()
    return real if real == repo.resolve() / "blobs" else None


def allowed_roots(root: Path) -> tuple[Path, ...]:
    """The folders files named under `root` may resolve into (itself, plus the HF cache's blobs)."""
    root = Path(root)
    blobs = _hf_blobs(root)
    return (root.resolve(),) if blobs is None else (root.resolve(), blobs)


def within(path: Path, roots: tuple[Path, ...]) -> bool:
    """Whether `path`, symlinks followed, lies inside one of `roots`."""
    real = Path(path).resolve()
    return any(real == r or real.is_relative_to(r) for r in roots)


def inside(root: str | Path, name: str, what: str, error: ErrorFactory = CheckpointError, source: Path | None = None) -> Path:
    """`root / name`, refused unless it stays inside `root` and is a regular file.

    `name` comes from an untrusted file (`source`, named in the error); absolute
    names, `..` parts and symlinks out of `root` (except into the HF cache's blobs) raise
    OutsideFolderError; a missing name or one that is not a regular file (a FIFO, a
    device) raises `error(source, reason)`.
    """
    root = Path(root)
    source = Path(source) if source is not None else root
    if not isinstance(name, str) or not name or "\x00" in name:
        raise error(source, f"{what} must be a non-empty file name, got {name!r}")
    pure = PurePath(name)
    if pure.is_absolute() or ".." in pure.parts or pure.drive:
        raise OutsideFolderError(source, f"{what} {name!r} lies outside {root}; refused")
    path = root / pure
    if not path.exists():
        raise error(source, f"{what} {name!r} is missing")
    if not within(path, allowed_roots(root)):
        raise OutsideFolderError(source, f"{what} {name!r} is a symlink leading outside {root}; refused")
    if not path.is_file():
        raise error(source, f"{what} {name!r} is not a regular file")
    return path



def check_output(output: str | Path, inputs: Iterable[str | Path], what: str = "output") -> Path:
    """`output`, unless it names one of `inputs` (same path, link or hard link): OutputIsInputError.

    A command that writes over the file it reads destroys its own input, so every CLI
    checks its output paths against its inputs before doing any work.
    """
    out = Path(output)
    for given in inputs:
        source = Path(given)
        if not source.exists():
            continue
        same = out.exists() and os.path.samefile(out, source)
        if same or out.resolve() == source.resolve():
            raise OutputIsInputError(out, f"the {what} is the input {source}; writing it would destroy the input")
    return out
