"""`assert_negative_control`: show that a symmetry check can fail at all.

An equivariance test passes trivially for a function that ignores its input, or one
that treats every entry on its own (and so commutes with far more than the spec's
group). Permuting one axis of one entry alone is not a symmetry of the weights; a
function that really reads the weights' structure must notice it.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import torch

from ..errors import ConfigError
from ..spec import Entry, Factor, Group, GroupElement, WeightSpec
from ..spec.weight_spec import Member
from ._common import as_outputs, default_generator, max_abs_diff, prepare_inputs
from .equivariance import WeightFn


def _pick_member(spec: WeightSpec, key: str | None, group: str | None, axis: int | None) -> Member:
    """The first (key, axis, factor) matching the filters whose lone permutation leaves the group."""
    names = [group] if group is not None else list(spec.groups)
    for name in names:
        members = spec.members(name)
        if spec.groups[name].size < 2 or len(members) < 2:
            continue
        for m in members:
            if (key is None or m.key == key) and (axis is None or m.axis == axis):
                return m
    raise ConfigError(
        f"no axis to permute alone (key={key!r}, group={group!r}, axis={axis!r}): it needs a group of "
        "size >= 2 acting on at least two places, so that permuting one of them leaves the group"
    )


def single_axis_spec(spec: WeightSpec, member: Member) -> WeightSpec:
    """A spec holding only `member.key`, whose group acts on that one factor and nowhere else.

    Applying any non-identity element of it permutes one axis of one tensor alone, an
    element outside `spec`'s group.
    """
    entry = spec.entries[member.key]
    name = entry.axes[member.axis][member.factor].group
    axes = tuple(
        tuple(f if (i, j) == (member.axis, member.factor) else Factor(None, f.size) for j, f in enumerate(axis))
        for i, axis in enumerate(entry.axes)
    )
    group = spec.groups[name]
    return WeightSpec(
        {member.key: Entry(member.key, entry.shape, axes, entry.buffer)},
        {name: Group(name, group.size, group.kind)},
    )


def _same_factor(spec: WeightSpec, member: Member, name: str) -> bool:
    """Whether `spec` has `member`'s key with group `name` at the same axis factor."""
    entry = spec.entries.get(member.key)
    if entry is None or member.axis >= len(entry.axes) or member.factor >= len(entry.axes[member.axis]):
        return False
    return entry.axes[member.axis][member.factor].group == name


def _non_identity_perm(n: int, generator: torch.Generator) -> torch.Tensor:
    while True:
        p = torch.randperm(n, generator=generator)
        if not torch.equal(p, torch.arange(n)):
            return p


def assert_negative_control(
    fn: WeightFn,
    spec: WeightSpec,
    spec_out: WeightSpec | None = None,
    *,
    key: str | None = None,
    group: str | None = None,
    axis: int | None = None,
    inputs: Mapping[str, torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    batch_dims: int = 1,
    batch_shape: Iterable[int] | None = None,
    margin: float = 1e-6,
) -> float:
    """Permute one group axis of one entry alone and check that fn notices.

    Without `spec_out` (an invariant fn), "notices" means fn's outputs move. With
    `spec_out` (an equivariant fn), the same lone permutation is applied to the same
    output entry axis (if spec_out has it), and fn must fail to commute with it.

    Args:
        key, group, axis: which axis to permute (default: the first one, in group
            order, of a group of size >= 2 with at least two members).
        margin: the smallest change, in max absolute difference, that counts.
        inputs, generator, dtype, batch_dims, batch_shape: as in `assert_equivariant`.

    Returns:
        the change: the largest absolute difference in fn's outputs.

    Raises:
        AssertionError: when the change is not above `margin`.
        ValueError: when no axis matches the filters.
    """
    gen = default_generator(generator)
    x = prepare_inputs(spec, inputs, gen, dtype, batch_dims, batch_shape)
    member = _pick_member(spec, key, group, axis)
    lone = single_axis_spec(spec, member)
    name = next(iter(lone.groups))
    g = GroupElement({name: _non_identity_perm(lone.groups[name].size, gen)})

    expected = as_outputs(fn({k: v.clone() for k, v in x.items()}))
    moved = dict(x)
    moved.update(lone.apply({member.key: x[member.key]}, g, batch_dims=batch_dims, strict=False))
    got = as_outputs(fn(moved))
    if spec_out is not None and _same_factor(spec_out, member, name):
        lone_out = single_axis_spec(spec_out, member)
        expected = dict(expected)
        expected.update(lone_out.apply({member.key: expected[member.key]}, g, batch_dims=batch_dims, strict=False))
    if set(got) != set(expected):
        return float("inf")
    change = max((max_abs_diff(got[k], expected[k]) for k in expected), default=0.0)
    if not change > margin:
        moved_by = "moved fn's outputs" if spec_out is None else "made fn fail to commute with it"
        raise AssertionError(
            f"negative control failed: permuting axis {member.axis} of {member.key!r} alone (group {name!r}, "
            f"outside the spec's group) {moved_by} by {change:.3g}, not more than margin {margin:g}. "
            "fn ignores that axis or treats it without regard to the rest, so an equivariance "
            "check on it cannot fail."
        )
    return change
