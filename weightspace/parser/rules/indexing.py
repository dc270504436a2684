"""Ops that read a tensor at positions held in an index tensor.

Positions are fixed numbers, so the indexed axis is fixed, unless the index addresses
an axis of that size (top-k or argmax positions, `parser.addressing`): then the indexed
axis is unified with it, as permuting both moves the positions and the entries alike
(a router's rows and its stacked experts). The output's indexed slots follow the
index's own axes; the other axes pass through.
"""
from __future__ import annotations

from ..addressing import fix_addressed, read_at
from ..context import Context, TensorValue
from .common import broadcast, is_tensor, norm_dim, same_axes
from .registry import rule


@rule("index_select", reads_addresses=True)
def index_select(ctx: Context, p: dict, out: TensorValue):
    """out[.., j, ..] = x[.., idx[j], ..]: fixed positions fix the axis, and the index (its
    order is the output's order); addressing positions tie the axis to what they address."""
    x, idx = p["self"], p["index"]
    d = norm_dim(p["dim"], x.ndim)
    where = f"indexed at {ctx.where()}"
    fix_addressed(ctx, x, where)
    if read_at(ctx, x.axes[d], x.shape[d], idx, where):
        if idx.ndim and out.shape[d] > 1:
            ctx.unify(out.axes[d], idx.axes[0])
    else:
        ctx.atoms.fix(out.axes[d], where)
        ctx.fix(idx, f"index tensor at {ctx.where()}")
    same_axes(ctx, x, out, skip={d})


@rule("gather", reads_addresses=True)
def gather(ctx: Context, p: dict, out: TensorValue):
    """out[..i..] = x[..index[..i..]..] along `dim`: that axis of x is read at the index's
    positions, and that axis of the index and of out is one axis where they address x's
    axis (fixed otherwise); other axes of index and out are one axis, and one with x where
    x is not cut."""
    x, idx = p["self"], p["index"]
    d = norm_dim(p["dim"], x.ndim)
    where = f"gathered at {ctx.where()}"
    fix_addressed(ctx, x, where)
    if read_at(ctx, x.axes[d], x.shape[d], idx, where):
        if idx.shape[d] > 1:
            ctx.unify(idx.axes[d], out.axes[d])
    else:
        ctx.atoms.fix(idx.axes[d], where)
        ctx.atoms.fix(out.axes[d], where)
    for i in range(idx.ndim):
        if i == d:
            continue
        if idx.shape[i] > 1:
            ctx.unify(idx.axes[i], out.axes[i])
        if x.shape[i] == idx.shape[i]:
            if x.shape[i] > 1:
                ctx.unify(x.axes[i], out.axes[i])
        else:
            ctx.atoms.fix(x.axes[i], where)


@rule("embedding", reads_addresses=True)
def embedding(ctx: Context, p: dict, out: TensorValue):
    """Rows of an embedding table are addressed by index: the row axis is fixed, unless the
    indices address an axis of that size (and no padding row is singled out)."""
    w, idx = p["weight"], p["indices"]
    why = "embedding rows (addressed by index)"
    fix_addressed(ctx, w, why)
    padding = p.get("padding_idx")
    if padding is not None and padding >= 0:
        fix_addressed(ctx, idx, f"{why}, padding row {padding}")
    read_at(ctx, w.axes[0], w.shape[0], idx, why)
    ctx.unify(out.axes[-1], w.axes[1])
    for i in range(idx.ndim):
        if idx.shape[i] > 1:
            ctx.unify(out.axes[i], idx.axes[i])


@rule("one_hot", reads_addresses=True)
def one_hot(ctx: Context, p: dict, out: TensorValue):
    """out[..., c] = (idx[...] == c): the class axis is fixed, unless idx addresses an axis
    of that size (then it is that axis); idx's axes are out's leading axes."""
    idx = p["self"]
    read_at(ctx, out.axes[-1], out.shape[-1], idx, f"one-hot classes at {ctx.where()}")
    for i in range(idx.ndim):
        if idx.shape[i] > 1:
            ctx.unify(out.axes[i], idx.axes[i])


@rule("index", reads_addresses=True)
def index(ctx: Context, p: dict, out: TensorValue):
    """Advanced indexing x[..., idx, ...]: indexed axes are read at the indices' positions
    (fixed, or tied to what they address), others pass through."""
    x, indices = p["self"], list(p["indices"])
    used = [i for i, t in enumerate(indices) if t is not None]
    where = f"indexed at {ctx.where()}"
    fix_addressed(ctx, x, where)
    if not used or not all(is_tensor(indices[i]) for i in used):
        ctx.unknown([x, *[t for t in indices if is_tensor(t)], out], "aten.index", "non-tensor indices")
        return
    for i in used:
        read_at(ctx, x.axes[i], x.shape[i], indices[i], where)
    contiguous = used == list(range(used[0], used[-1] + 1))
    start = used[0] if contiguous else 0
    idx_rank = out.ndim - (x.ndim - len(used))
    mid = TensorValue(out.shape[start : start + idx_rank], out.axes[start : start + idx_rank])
    broadcast(ctx, mid, *[indices[i] for i in used])
    rest = [i for i in range(x.ndim) if i not in used]
    slots = list(range(start)) + list(range(start + idx_rank, out.ndim))
    for i, j in zip(rest, slots):
        if x.shape[i] > 1 and x.shape[i] == out.shape[j]:
            ctx.unify(x.axes[i], out.axes[j])
