"""Reductions and softmax: a sum/mean/max over an axis is invariant to its order,
so reduced axes are free; axes that remain pass through. Ops that return
positions (argmax, sort, topk) fix the axis whose positions they report."""
from __future__ import annotations

from ..context import Context, TensorValue
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


@rule("max", "min", "argmax", "argmin", "sort", "topk", "kthvalue", "median", "mode", "argsort", "msort")
def positional(ctx: Context, p: dict, out):
    x = p["self"]
    outs = out if isinstance(out, (list, tuple)) else [out]
    if p.get("dim") is None and "other" in p:
        for o in outs:
            same_axes(ctx, x, o)
        same_axes(ctx, p["other"], outs[0])
        return
    dims = _dims(p, x.ndim)
    for d in dims:
        ctx.atoms.fix(x.axes[d], f"positions reported at {ctx.where()}")
    for o in outs:
        _pass_remaining(ctx, x, o, dims)
        if o.ndim == x.ndim:
            for d in dims:
                ctx.atoms.fix(o.axes[d], f"positions reported at {ctx.where()}")


@rule("softmax", "_softmax", "log_softmax", "_log_softmax", "_safe_softmax")
def softmax(ctx: Context, p: dict, out: TensorValue):
    same_axes(ctx, p["self"] if "self" in p else p["input"], out)
