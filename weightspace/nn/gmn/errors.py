"""Errors of the graph metanetworks."""
from __future__ import annotations

from ...errors import WeightspaceError


class GMNError(WeightspaceError):
    """A graph batch the metanetwork cannot read (unknown edge width, missing graph meta, ...)."""
