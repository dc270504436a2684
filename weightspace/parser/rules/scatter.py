"""Ops that write into a tensor at positions held in an index tensor (the other half of
`indexing`): scatter, index_add/copy/fill, index_put.

The written axis is read at the index's positions (`addressing.read_at`): fixed where
they are fixed numbers, unified with the axis they address where they come from a
position-reporting op (a top-k's chosen experts scattered into a dense (tokens, experts)
gate matrix, or expert outputs added into per-expert buffers). Permuting that axis moves
each position and its entry alike, so the output is the permuted output, whatever the
reduction (every position's set of contributions is only relabelled). The slots the
writes come from (the index's own axis along the written dim, an index_put's broadcast
index axes) are fixed: where two slots write one position, the one written last wins.
Axes that the write keeps in line (the self tensor's other axes, and the source's where
sizes match) are one axis; a source read only in part (scatter's src larger than index)
is fixed along that axis.
"""
from __future__ import annotations

import torch

from ..addressing import fix_addressed, read_at
from ..context import Context, TensorValue
from .common import is_tensor, norm_dim, same_axes
from .registry import rule


@rule("scatter", "scatter_add", "scatter_reduce", reads_addresses=True)
def scatter(ctx: Context, p: dict, out: TensorValue):
    """out = self, then out[..index[..j..]..] (reduce)= src[..j..] along `dim`."""
    x, idx, src = p["self"], p["index"], p.get("src")
    d = norm_dim(p["dim"], x.ndim)
    where = f"scattered at {ctx.where()}"
    fix_addressed(ctx, [x, src], where)
    if not x.ndim:
        fix_addressed(ctx, idx, where)
        return
    same_axes(ctx, x, out)
    ctx.atoms.fix(idx.axes[d], f"scatter slots at {ctx.where()}")
    read_at(ctx, x.axes[d], x.shape[d], idx, where)
    for i in range(idx.ndim):
        if is_tensor(src):
            if src.shape[i] == idx.shape[i]:
                if idx.shape[i] > 1:
                    ctx.unify(src.axes[i], idx.axes[i])
            else:
                ctx.atoms.fix(src.axes[i], f"{where} (source read in part)")
                ctx.atoms.fix(idx.axes[i], where)
        if i == d:
            continue
        if x.shape[i] == idx.shape[i]:
            if x.shape[i] > 1:
                ctx.unify(x.axes[i], idx.axes[i])
        else:
            ctx.atoms.fix(x.axes[i], f"{where} (written in part)")
            ctx.atoms.fix(idx.axes[i], where)


@rule("index_add", "index_copy", "index_fill", reads_addresses=True)
def index_add(ctx: Context, p: dict, out: TensorValue):
    """out = self, then out.select(dim, index[j]) (+)= source.select(dim, j) (index_fill: a value)."""
    x, idx, src = p["self"], p["index"], p.get("source")
    d = norm_dim(p["dim"], x.ndim)
    where = f"written at {ctx.where()}"
    fix_addressed(ctx, [x, src, p.get("value")], where)
    same_axes(ctx, x, out)
    if is_tensor(idx) and idx.ndim:
        ctx.atoms.fix(idx.axes[0], f"index slots at {ctx.where()}")
    read_at(ctx, x.axes[d], x.shape[d], idx, where)
    if is_tensor(src):
        if src.ndim == x.ndim:
            same_axes(ctx, x, src, skip={d})
            if idx.ndim:
                ctx.unify(src.axes[d], idx.axes[0])
        else:
            ctx.fix(src, where)


def _has_mask(node) -> bool:
    """Whether an index_put node's indices hold a boolean (or uint8) mask."""
    nodes = node.args[1] if len(node.args) > 1 else node.kwargs.get("indices", ())
    return any(isinstance(n, torch.fx.Node) and isinstance(n.meta.get("val"), torch.Tensor)
               and n.meta["val"].dtype in (torch.bool, torch.uint8) for n in nodes or ())


@rule("index_put", reads_addresses=True)
def index_put(ctx: Context, p: dict, out: TensorValue):
    """out = self, then out[indices] (+)= values (broadcast): indexed axes are written at the
    indices' positions, the indices' broadcast slots are fixed, the other axes line up."""
    x, indices, values = p["self"], list(p["indices"]), p["values"]
    used = [i for i, t in enumerate(indices) if t is not None]
    where = f"written at {ctx.where()}"
    fix_addressed(ctx, [x, values], where)
    if not used or not all(is_tensor(indices[i]) for i in used):
        ctx.unknown([x, values, *[t for t in indices if is_tensor(t)], out], "aten.index_put", "non-tensor indices")
        return
    if _has_mask(ctx.node):  # a boolean mask spans several axes of self
        ctx.unknown([x, values, *[t for t in indices if is_tensor(t)], out], "aten.index_put", "boolean-mask indices")
        return
    same_axes(ctx, x, out)
    for i in used:
        ctx.fix(indices[i], f"index slots at {ctx.where()}")
        read_at(ctx, x.axes[i], x.shape[i], indices[i], where)
    if not is_tensor(values):
        return
    rank = max(indices[i].ndim for i in used)
    start = used[0] if used == list(range(used[0], used[-1] + 1)) else 0
    rest = [i for i in range(x.ndim) if i not in used]
    # position of each kept axis of x in x[indices]: the index slots sit at start..start+rank
    kept = {(k if k < start else k + rank): i for k, i in enumerate(rest)}
    offset = rank + len(rest) - values.ndim
    for i in range(values.ndim):
        j = kept.get(i + offset)
        if j is not None and values.shape[i] == x.shape[j]:
            if x.shape[j] > 1:
                ctx.unify(values.axes[i], x.axes[j])
        elif values.shape[i] > 1:
            ctx.atoms.fix(values.axes[i], where)
