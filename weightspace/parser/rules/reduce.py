"""Reductions and softmax: a sum/mean/max over an axis is invariant to its order,
so reduced axes are free; axes that remain pass through. The positions that argmax,
sort and topk report address their axis (`parser.addressing`): an index consumer
unifies with it, any other use fixes it."""
from __future__ import annotations

import operator

import torch

from ..addressing import tie_risk
from ..context import Context, TensorValue, packet
from .common import norm_dim, same_axes
from .registry import rule


def _dims(p: dict, ndim: int) -> set[int]:
    dims = p.get("dim")
    if dims is None:
        return set(range(ndim))
    dims = [dims] if isinstance(dims, int) else list(dims)
    if not dims:
        return set(range(ndim))
    return {norm_dim(d, ndim) for d in dims}


def _pass_remaining(ctx: Context, x: TensorValue, out: TensorValue, dims: set[int]) -> None:
    if out.ndim == x.ndim:
        same_axes(ctx, x, out, skip=dims)
        return
    kept = [i for i in range(x.ndim) if i not in dims]
    for j, i in enumerate(kept[: out.ndim]):
        if x.shape[i] > 1 and x.shape[i] == out.shape[j]:
            ctx.unify(x.axes[i], out.axes[j])


@rule("sum", "mean", "amax", "amin", "var", "std", "logsumexp", "norm", "linalg_vector_norm", "prod", "all", "any", "nansum", "nanmean", "var_mean", "std_mean", "count_nonzero")
def reduction(ctx: Context, p: dict, out):
    x = p["self"] if "self" in p else p["input"]
    dims = _dims(p, x.ndim)
    for o in out if isinstance(out, (list, tuple)) else [out]:
        _pass_remaining(ctx, x, o, dims)


_ONLY_INDICES = {"argmax", "argmin", "argsort"}
_WITH_INDICES = {"max", "min", "sort", "topk", "kthvalue", "median", "mode"}  # (values, indices) when given a dim


@rule("max", "min", "argmax", "argmin", "sort", "topk", "kthvalue", "median", "mode", "argsort", "msort")
def positional(ctx: Context, p: dict, out):
    """Values picked or sorted along an axis are invariant to its order; the positions
    reported address it (`parser.addressing`), unless the values may tie (then it is
    fixed). An output axis in value order (sort, topk) is fixed: a slot, not a unit."""
    x = p["self"]
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    if p.get("dim") is None and "other" in p:
        for o in outs:
            same_axes(ctx, x, o)
        same_axes(ctx, p["other"], outs[0])
        return
    name = packet(ctx.node)
    dims = {0} if name == "msort" else _dims(p, x.ndim)
    where = ctx.where()
    for o in outs:
        _pass_remaining(ctx, x, o, dims)
        if o.ndim == x.ndim:
            for d in dims:
                ctx.atoms.fix(o.axes[d], f"slots in value order at {where}")
    indices = outs if name in _ONLY_INDICES else outs[1:] if name in _WITH_INDICES else []
    if not indices or not _indices_read(ctx.node, name):
        return
    addressed = [a for d in sorted(dims) for a in x.axes[d]]  # several dims: positions in x flattened
    source = ctx.node.args[0] if ctx.node.args else None
    risk = tie_risk(source) if isinstance(source, torch.fx.Node) else "no source node"
    if risk is not None:
        ctx.atoms.fix(addressed, f"positions reported at {where}, values may tie ({risk})")
    for o in indices:
        o.addresses = addressed


def _indices_read(node, name: str) -> bool:
    """Whether anything reads the positions (the op's only output, or its output 1)."""
    if name in _ONLY_INDICES:
        return True
    return any(u.target is operator.getitem and u.args[1] == 1 and u.users for u in node.users)


@rule("softmax", "_softmax", "log_softmax", "_log_softmax", "_safe_softmax")
def softmax(ctx: Context, p: dict, out: TensorValue):
    same_axes(ctx, p["self"] if "self" in p else p["input"], out)
