"""The permutation-symmetry spec and its group action, plus exports to Re-Basin and UNF formats."""
from .element import GroupElement
from .formats import to_rebasin, to_unf
from .parts import Entry, ExtraAction, Factor, FrozenAxis, Group
from .weight_spec import WeightSpec

__all__ = [
    "Entry",
    "ExtraAction",
    "Factor",
    "FrozenAxis",
    "Group",
    "GroupElement",
    "WeightSpec",
    "to_rebasin",
    "to_unf",
]
