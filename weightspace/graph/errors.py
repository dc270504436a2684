"""Errors of the parameter-graph package."""
from __future__ import annotations

from ..errors import WeightspaceError


class GraphError(WeightspaceError):
    """A parameter graph does not fit the spec, structure or values it is used with."""
