"""Errors raised by alignment and merging."""
from __future__ import annotations

from ..errors import WeightspaceError


class AlignError(WeightspaceError):
    """Alignment or merging could not run on the given models, spec or data."""


class ArchitectureMismatchError(AlignError):
    """Two state dicts to align do not describe the same architecture."""

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"models A and B differ first at {key!r}: {reason}")
