"""Small helpers the rules share."""
from __future__ import annotations

from ..context import Context, TensorValue


def is_tensor(v) -> bool:
    return isinstance(v, TensorValue)


def norm_dim(d: int, ndim: int) -> int:
    return d + ndim if d < 0 else d


def broadcast(ctx: Context, out: TensorValue, *inputs) -> None:
    """Broadcasting semantics: right-aligned axes of equal size are the same axis."""
    for t in inputs:
        if not is_tensor(t):
            continue
        offset = out.ndim - t.ndim
        for i in range(t.ndim):
            j = i + offset
            if j >= 0 and t.shape[i] == out.shape[j] and t.shape[i] > 1:
                ctx.unify(t.axes[i], out.axes[j])


def same_axes(ctx: Context, a: TensorValue, b: TensorValue, skip: set[int] = frozenset()) -> None:
    """Unify all axes of two tensors of equal rank, except those in `skip`."""
    for i in range(min(a.ndim, b.ndim)):
        if i not in skip and a.shape[i] == b.shape[i] and a.shape[i] > 1:
            ctx.unify(a.axes[i], b.axes[i])
