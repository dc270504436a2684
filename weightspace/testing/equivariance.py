"""`assert_equivariant` / `assert_invariant`: check a function of weights against the spec's group.

Modelled on e3nn's `assert_equivariant`: draw random group elements with the spec's
own action (`WeightSpec.apply`), compare in float64, and on failure name the output
that moved, where, by how much, and which group alone breaks it.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import torch

from ..spec import GroupElement, WeightSpec
from ._common import (
    Mismatch,
    as_outputs,
    compare,
    default_generator,
    element_batch_shape,
    prepare_inputs,
    restrict,
)

WeightFn = Callable[[dict[str, torch.Tensor]], Any]


def _input_members(spec: WeightSpec, group: str) -> str:
    """Where `group` acts on the input, in words."""
    members = [f"{m.key!r} axis {m.axis}" for m in spec.members(group)]
    return "acts on " + ", ".join(members[:4]) + (" …" if len(members) > 4 else "")


def _axes_of(spec: WeightSpec, key: str, group: str) -> str:
    """Where `group` acts on output `key`, in words."""
    if key not in spec.entries and key not in spec.aliases:
        return f"output {key!r} is not in the output spec"
    axes = [i for i, axis in enumerate(spec.entry(key).axes) if any(f.group == group for f in axis)]
    if not axes:
        return f"{group!r} does not act on {key!r}, which should not change"
    return f"{group!r} acts on axis {', '.join(map(str, axes))} of {key!r}"


def _report(
    what: str,
    bad: list[Mismatch],
    culprits: list[str],
    spec_in: WeightSpec,
    spec_out: WeightSpec | None,
    trial: int,
    n_trials: int,
    rtol: float,
    atol: float,
) -> str:
    first = bad[0]
    lines = [f"fn is not {what}: {first.describe()} (rtol={rtol:g}, atol={atol:g}), trial {trial + 1}/{n_trials}."]
    if culprits:
        where = (
            (lambda c: _input_members(spec_in, c))
            if spec_out is None
            else (lambda c: _axes_of(spec_out, first.key, c))
        )
        named = "; ".join(f"group {c!r} ({where(c)})" for c in culprits)
        lines.append(f"Applying one group alone breaks it: {named}.")
    else:
        lines.append("No single group breaks it alone; their combination does.")
    if len(bad) > 1:
        lines.append("Other failing outputs: " + ", ".join(f"{m.key!r} ({m.max_diff:.3g})" for m in bad[1:8]))
    return " ".join(lines)


def _check(
    what: str,
    fn: WeightFn,
    spec_in: WeightSpec,
    spec_out: WeightSpec | None,
    inputs: Mapping[str, torch.Tensor] | None,
    n_trials: int,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    rtol: float,
    atol: float,
    batch_dims: int,
    batch_shape: Iterable[int] | None,
    extra: bool,
) -> float:
    gen = default_generator(generator)
    x = prepare_inputs(spec_in, inputs, gen, dtype, batch_dims, batch_shape)
    y = as_outputs(fn({k: v.clone() for k, v in x.items()}))

    def transformed(g: GroupElement) -> tuple[dict, dict]:
        got = as_outputs(fn(spec_in.apply(x, g, batch_dims=batch_dims)))
        if spec_out is None:
            return got, y
        return got, spec_out.apply(y, restrict(g, spec_out), batch_dims=batch_dims, strict=False)

    worst = 0.0
    for trial in range(n_trials):
        g = spec_in.random_element(gen, extra=extra, batch_shape=element_batch_shape(x, batch_dims))
        bad, d = compare(*transformed(g), rtol, atol)
        worst = max(worst, d)
        if bad:
            key = bad[0].key
            culprits = [
                name
                for name in g.perms
                if any(m.key == key for m in compare(*transformed(g.restrict([name])), rtol, atol)[0])
            ]
            raise AssertionError(_report(what, bad, culprits, spec_in, spec_out, trial, n_trials, rtol, atol))
    return worst


def assert_equivariant(
    fn: WeightFn,
    spec_in: WeightSpec,
    spec_out: WeightSpec | None = None,
    *,
    inputs: Mapping[str, torch.Tensor] | None = None,
    n_trials: int = 3,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    batch_dims: int = 1,
    batch_shape: Iterable[int] | None = None,
    extra: bool = False,
) -> float:
    """Check fn(g·x) == g·fn(x) for random elements g of `spec_in`'s group.

    Args:
        fn: maps a dict of weight tensors, each of shape (*batch, *entry.shape), to a
            dict of tensors that `spec_out` describes (same groups, by name).
        spec_in: spec of fn's input; spec_out: of its output (default: spec_in).
            Groups of spec_in that spec_out lacks must leave the output unchanged.
        inputs: the weights to test at (cast to `dtype`); default random normal.
        n_trials: how many random elements to draw.
        generator: source of randomness (default: a fixed seed, so failures reproduce).
        dtype: computation dtype; fn must accept it (call `.double()` on a module).
        batch_dims: leading batch dims of every tensor, e.g. 1 for (B, *shape) or 2 for
            (B, C, *shape). Each index of the first batch dim gets its own element;
            later batch dims share it.
        batch_shape: shape of the batch dims of the random inputs (default 2 each).
        extra: also draw the spec's sign/scale symmetries.

    Returns:
        the largest absolute difference seen (within tolerance).

    Raises:
        AssertionError: naming the failing output key, the index and size of the
            largest difference, and which group alone breaks it on which axes.
    """
    spec_out = spec_in if spec_out is None else spec_out
    return _check(
        "equivariant", fn, spec_in, spec_out, inputs, n_trials, generator, dtype, rtol, atol,
        batch_dims, batch_shape, extra,
    )


def assert_invariant(
    fn: WeightFn,
    spec: WeightSpec,
    *,
    inputs: Mapping[str, torch.Tensor] | None = None,
    n_trials: int = 3,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    batch_dims: int = 1,
    batch_shape: Iterable[int] | None = None,
    extra: bool = False,
) -> float:
    """Check fn(g·x) == fn(x) for random elements g of `spec`'s group.

    fn may return a tensor, a dict of tensors or a tuple of tensors; every one must be
    unchanged. The other arguments, the return value and the error are as in
    `assert_equivariant`.
    """
    return _check(
        "invariant", fn, spec, None, inputs, n_trials, generator, dtype, rtol, atol, batch_dims, batch_shape, extra
    )
