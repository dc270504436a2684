"""One builder per zoo folder: an advisory lock file holding the builder's pid.

Two builds writing one folder interleave their plans, shards and manifests into a zoo
whose every checksum passes yet whose labels are wrong, so a build holds
`DIR/.build.lock` (`fcntl.flock`, released by the kernel when the process dies, so a
lock left by a killed build is taken over) and a second builder is refused with
FolderLockedError naming the pid that holds it.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from weightspace.errors import FolderLockedError, ZooError

LOCK = ".build.lock"


def _holder(fd: int) -> str:
    """Who holds the lock, from the pid its holder wrote."""
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "a process that has not written its pid yet"


@contextmanager
def build_lock(root: Path) -> Iterator[None]:
    """Hold the build lock of `root` (created if needed) for the duration of the block."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ZooError(f"{root}: is a file, not a zoo folder")
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise FolderLockedError(root, holder) from None
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)  # the previous holder removed the file between our open and flock
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
