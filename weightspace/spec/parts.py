"""The immutable pieces a `WeightSpec` is made of: factors, entries, groups, notes."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from math import prod

from ..errors import SpecError

GROUP_KINDS = ("neuron", "channel", "head", "head_dim", "residual", "hidden", "unit")
EXTRA_SYMMETRIES = ("sign", "scale")


@dataclass(frozen=True)
class Factor:
    """One factor of a tensor axis: `size` indices permuted by `group` (None: fixed).

    An axis is the row-major product of its factors: an axis of size 384 that is
    really (heads=6, head_dim=64) has two factors, the first one the slower.
    """

    group: str | None
    size: int

    def __repr__(self) -> str:
        return f"{self.group or '·'}:{self.size}"


@dataclass(frozen=True)
class Entry:
    """One state-dict entry (parameter or buffer): its shape and per-axis factors."""

    key: str
    shape: tuple[int, ...]
    axes: tuple[tuple[Factor, ...], ...]
    buffer: bool = False

    def __post_init__(self):
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in self.shape):
            raise SpecError(f"{self.key}: shape {self.shape} must hold non-negative ints")
        if not all(isinstance(f, Factor) for axis in self.axes for f in axis):
            raise SpecError(f"{self.key}: axes must be tuples of Factor")
        if len(self.axes) != len(self.shape):
            raise SpecError(f"{self.key}: {len(self.axes)} axis factor lists for shape {self.shape}")
        for i, (n, factors) in enumerate(zip(self.shape, self.axes)):
            if prod(f.size for f in factors) != n:
                raise SpecError(f"{self.key}: factors {factors} of axis {i} do not multiply to {n}")

    @property
    def groups(self) -> set[str]:
        return {f.group for axis in self.axes for f in axis if f.group is not None}

    @cached_property
    def factors(self) -> tuple[Factor, ...]:
        """Every axis's factors in order: the dims of the factored view (computed once: the action walks them)."""
        return tuple(f for axis in self.axes for f in axis)

    @cached_property
    def factored_shape(self) -> tuple[int, ...]:
        """The shape with every axis split into its factors (computed once: the action reshapes by it)."""
        return tuple(f.size for f in self.factors)


@dataclass(frozen=True)
class ExtraAction:
    """Where an extra (sign/scale) symmetry multiplies: `key`'s `axis` by s**power.

    power is +1 on the axes that produce the unit (a weight's output rows, its bias)
    and -1 on the axes that consume it, so the function is unchanged.
    """

    key: str
    axis: int
    power: int


@dataclass(frozen=True)
class Group:
    """A permutation group acting on `size` interchangeable units.

    kind: one of GROUP_KINDS. extra: further symmetries the activation after the units
    allows ("sign" for odd activations such as tanh and sin, "scale" for positive
    rescaling through ReLU-family activations), acting as `extra_action` says.
    """

    name: str
    size: int
    kind: str = "unit"
    extra: tuple[str, ...] = ()
    extra_action: tuple[ExtraAction, ...] = ()

    def __post_init__(self):
        if self.kind not in GROUP_KINDS:
            raise SpecError(f"group {self.name!r}: unknown kind {self.kind!r}, expected one of {GROUP_KINDS}")
        bad = [e for e in self.extra if e not in EXTRA_SYMMETRIES]
        if bad:
            raise SpecError(f"group {self.name!r}: unknown extra symmetries {bad}")
        if self.extra and not self.extra_action:
            raise SpecError(f"group {self.name!r}: extra symmetries {self.extra} need an extra_action")


@dataclass(frozen=True)
class FrozenAxis:
    """Why an axis (or an atom of it) is fixed: model input/output, an op without a rule, …"""

    key: str
    axis: int
    reason: str
