"""Errors the zoo raises on bad input or damaged zoos; all subclass `WeightspaceError`."""
from __future__ import annotations

from weightspace.errors import WeightspaceError


class ZooError(WeightspaceError):
    """A zoo directory, build request or import source is invalid."""


class ChecksumError(ZooError):
    """A shard's bytes do not match the checksum recorded when it was written."""

    def __init__(self, path, expected: str, got: str):
        self.path = str(path)
        self.expected = expected
        self.got = got
        super().__init__(
            f"{self.path}: checksum mismatch (recorded sha256 {expected[:16]}…, file has {got[:16]}…); "
            "the shard is corrupt: delete it and re-run the build to regenerate it"
        )


class ImportFormatError(ZooError):
    """An import source does not have the layout its importer expects."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {reason}")
