"""The permutation-symmetry spec and its group action."""
from .element import GroupElement
from .formats import factored_shapes, perm_to_axes, to_rebasin, to_unf
from .parts import GROUP_KINDS, Entry, ExtraAction, Factor, FrozenAxis, Group
from .weight_spec import Member, WeightSpec

__all__ = [
    "GROUP_KINDS",
    "Entry",
    "ExtraAction",
    "Factor",
    "FrozenAxis",
    "Group",
    "GroupElement",
    "Member",
    "WeightSpec",
    "factored_shapes",
    "perm_to_axes",
    "to_rebasin",
    "to_unf",
]
