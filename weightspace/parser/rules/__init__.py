"""Per-ATen-op symmetry rules; importing this package registers them all."""
from . import attention, contract, conv, elementwise, indexing, norm, recurrent, reduce, scatter, shape  # noqa: F401
from .registry import RULES, lookup, rule

__all__ = ["RULES", "lookup", "rule"]
