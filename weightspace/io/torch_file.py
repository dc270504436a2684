"""Read `.pt/.pth/.bin/.ckpt` files with `torch.load(weights_only=True)` only.

A torch pickle can run arbitrary code when unpickled, so we never unpickle without
`weights_only=True`. When torch refuses a file we scan its bytecode (without running
it) to name the code it asked for, and raise UnsafePickleError; any other failure to
read becomes a CheckpointError naming the file.
"""
from __future__ import annotations

import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, UnsafePickleError
from .pickle_scan import unsafe_globals

_ZIP_MAGIC = b"PK\x03\x04"
# Everything torch.load raises on a file it cannot parse (as opposed to our own errors).
_READ_ERRORS = (
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    UnicodeDecodeError,
    struct.error,
    zipfile.BadZipFile,
)


def is_zip_format(path: Path) -> bool:
    """Whether the file is torch's zip format (the only one `mmap=True` can open)."""
    with open(path, "rb") as f:
        return f.read(4) == _ZIP_MAGIC


def _refused(path: Path, err: Exception) -> CheckpointError:
    """The error for a pickle torch refused: unsafe if it names disallowed globals, else corrupt."""
    try:
        offenders = unsafe_globals(path)
    except OSError:
        offenders = []
    if offenders:
        return UnsafePickleError(path, offenders)
    return CheckpointError(path, f"not a readable torch checkpoint: {_first_line(err)}")


def _first_line(err: BaseException) -> str:
    """The informative line of an exception's message (torch's are pages long)."""
    text = str(err)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def load_torch(path: Path, map_location: Any = "cpu", mmap: bool = True) -> Any:
    """The object stored in a torch pickle, loaded with `weights_only=True`.

    `mmap` is honoured for zip-format files and ignored for the legacy format,
    which torch cannot memory-map.
    """
    use_mmap = bool(mmap) and is_zip_format(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as err:
        raise _refused(path, err) from None
    except _READ_ERRORS as err:
        if "Weights only load failed" in str(err):
            raise _refused(path, err) from None
        raise CheckpointError(path, f"corrupt or truncated torch checkpoint: {_first_line(err)}") from err
