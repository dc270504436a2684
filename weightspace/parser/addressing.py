"""Index values that address an axis: how top-k routing keeps its expert permutation.

`topk`, `argmax`, `sort` (and the other position-reporting ops) return positions along
an axis whose atoms are A. Permuting A by π (with everything unified with A) sends the
reported positions to π(positions): the index tensor *addresses* A
(`TensorValue.addresses`). A tensor read at those positions along an axis X
(`x[idx]`, `index_select`, `gather`, `embedding`, `one_hot`'s class axis) reads the
same entries when X is permuted by the same π, and a tensor written at them along X
(`scatter`, `index_add`/`index_copy`/`index_fill`, `index_put`; `rules.scatter`) is
written at the same entries, so those rules unify X with A instead of fixing X (a mixture
of experts: router rows, stacked expert weights, per-expert buffers). Every other use of
the values sees π(positions) where it saw positions (arithmetic, comparison, a value
scattered, a cast to a non-integer dtype, an op without a rule, a model output), so `screen` fixes A
before the op's rule runs: the default stays as conservative as fixing A at once.
Rearrangements that copy values unchanged (views, selections, integer casts) carry the
addresses to their output.

Ties: among exactly equal values the position reported depends on the order, which π
changes. Equal values are generic (they occur on inputs of positive measure) where an
op flattens a region of its input (relu, clamp, rounding, masking, a comparison, a
constant or a broadcast copy) or the values are not float32/float64; `tie_risk` looks for
such an op on the elementwise path into the position-reporting op and, if it finds one,
A is fixed. Other ties (a measure-zero set of inputs, e.g. a router whose hidden input is
exactly zero, or a softmax that underflows to 0 for several experts) are not seen here;
the numerical verification sees them only where its inputs hit them.
"""
from __future__ import annotations

from math import prod
from typing import Callable

import torch

from .context import Context, TensorValue, packet, tensors_in

# ops whose output holds the input's values unchanged, rearranged or copied
CARRIERS = {
    "view", "reshape", "_unsafe_view", "_reshape_alias", "flatten", "unflatten", "squeeze", "unsqueeze",
    "permute", "transpose", "t", "movedim", "expand", "select", "slice", "narrow", "clone", "contiguous",
    "alias", "detach", "lift_fresh_copy", "_to_copy", "to",
}
# elementwise ops a tie check walks back through (injective or monotone maps keep ties and non-ties)
_PASSING = {
    "softmax", "_softmax", "log_softmax", "_log_softmax", "_safe_softmax", "sigmoid", "exp", "log", "tanh",
    "add", "sub", "mul", "div", "neg", "clone", "contiguous", "alias", "detach", "_to_copy", "to", "view",
    "reshape", "_unsafe_view", "unsqueeze", "squeeze", "permute", "transpose", "t",
    "gelu", "silu", "softplus", "leaky_relu", "elu", "selu", "celu", "mish", "erf", "abs", "square", "pow", "sqrt",
}
# ops that map a region of inputs to one value: their outputs tie on sets of positive measure
_FLATTENING = {
    "relu", "relu6", "hardtanh", "clamp", "clamp_min", "clamp_max", "clip", "hardsigmoid", "hardswish",
    "threshold", "floor", "ceil", "round", "trunc", "sign", "sgn", "where", "masked_fill", "maximum",
    "minimum", "fmax", "fmin", "fill", "zero", "floor_divide", "remainder", "fmod", "frac",
    "expand", "repeat", "repeat_interleave",  # copies along an axis: equal values there
    "zeros", "ones", "full", "empty", "scalar_tensor", "zeros_like", "ones_like", "full_like", "empty_like",
    "new_zeros", "new_ones", "new_full", "new_empty",  # constants
}
_GENERIC_DTYPES = (torch.float32, torch.float64)
_MAX_WALK = 64


def addressed_size(ctx: Context, idx: TensorValue) -> int:
    """Size of the axis an addressing tensor's values are positions of."""
    return prod(ctx.atoms.size(a) for a in idx.addresses)


def fix_addressed(ctx: Context, value, why: str) -> None:
    """Fix the atoms every addressing tensor inside `value` addresses: its values were used as numbers."""
    for t in tensors_in(value):
        if t.addresses is not None:
            ctx.atoms.fix(t.addresses, why)


def read_at(ctx: Context, axis: list[int], size: int, idx, why: str) -> bool:
    """An axis (its atoms, its size) read at the positions held in `idx`.

    Where idx addresses atoms of that size, the axis is unified with them and True is
    returned; otherwise the axis is fixed (the positions are fixed numbers) and so is
    whatever idx addresses."""
    if isinstance(idx, TensorValue) and idx.addresses is not None and addressed_size(ctx, idx) == size:
        ctx.unify(axis, idx.addresses, why)
        return True
    ctx.atoms.fix(axis, why)
    fix_addressed(ctx, idx, why)
    return False


def _same_numbers(node, op: str, size: int) -> bool:
    """Whether a carrier's output holds its first input's positions 0..size-1 unchanged."""
    out = node.meta.get("val")
    src = node.args[0].meta.get("val") if node.args and isinstance(node.args[0], torch.fx.Node) else None
    if not isinstance(out, torch.Tensor) or not isinstance(src, torch.Tensor):
        return False
    if op not in ("_to_copy", "to"):
        return out.dtype == src.dtype
    if out.dtype.is_floating_point or out.dtype.is_complex or out.dtype == torch.bool:
        return False
    return torch.iinfo(out.dtype).max >= size - 1


def tie_risk(node) -> str | None:
    """Why the values a position-reporting op reads may tie on a set of positive measure
    (a flattening op on the elementwise path into it, or a dtype other than float32/64), or None."""
    stack, seen = [node], set()
    while stack and len(seen) < _MAX_WALK:
        n = stack.pop()
        if n.name in seen:
            continue
        seen.add(n.name)
        val = n.meta.get("val")
        if isinstance(val, torch.Tensor) and val.dtype not in _GENERIC_DTYPES:
            return f"{n.name} holds {val.dtype} values"
        op = packet(n).removesuffix("_")
        if op in _FLATTENING:
            return f"{op} at {n.name} makes equal values generic"
        if op in _PASSING:
            stack.extend(n.all_input_nodes)
    return None


def screen(ctx: Context, op: str, inputs: list, fn: Callable | None, metadata: bool) -> list[int] | None:
    """Before an op's rule: what addressing inputs mean to it.

    A rule marked `reads_addresses` handles them itself, and an op that reads only
    metadata does not read them (None). An op in CARRIERS whose one addressing input is
    its first tensor passes the addresses on (returned, for the output) where its output
    holds the same numbers: the input's dtype (`view(dtype)` reinterprets bits), or for a
    cast an integer dtype that holds every position. Otherwise every addressed atom is
    fixed (None)."""
    addressing = [t for t in tensors_in(inputs) if t.addresses is not None]
    if not addressing or metadata or getattr(fn, "reads_addresses", False):
        return None
    first = next(iter(tensors_in(inputs)), None)
    if op in CARRIERS and addressing == [first] and _same_numbers(ctx.node, op, addressed_size(ctx, first)):
        return first.addresses
    fix_addressed(ctx, addressing, f"index values used by {op} at {ctx.where()}")
    return None
