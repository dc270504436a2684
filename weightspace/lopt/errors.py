"""Errors of the learned optimizers."""
from __future__ import annotations

from ..errors import SpecError


class LoptError(SpecError):
    """A learned rule or meta-network was built or called with inputs it cannot use."""
