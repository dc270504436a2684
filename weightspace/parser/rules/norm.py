"""Normalization layers: statistics over permuted axes are permutation-invariant,
so each norm passes its axes through; affine parameters and running statistics
share the normalized channel/feature axis."""
from __future__ import annotations

from ..context import Context
from .common import broadcast, is_tensor, same_axes
from .registry import rule


def _first(out):
    return out[0] if isinstance(out, (list, tuple)) else out


@rule(
    "batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
    "_native_batch_norm_legit_functional", "native_batch_norm", "_batch_norm_impl_index",
    "cudnn_batch_norm", "instance_norm", "_batch_norm_with_update", "_batch_norm_no_update",
    "_batch_norm_with_update_functional",
)
def batch_norm(ctx: Context, p: dict, out):
    x = p["input"]
    y = _first(out)
    same_axes(ctx, x, y)
    channels = x.axes[1] if x.ndim > 1 else x.axes[0]
    for key in ("weight", "bias", "running_mean", "running_var"):
        t = p.get(key)
        if is_tensor(t):
            ctx.unify(t.axes[0], channels)
    c = x.shape[1] if x.ndim > 1 else x.shape[0]
    if isinstance(out, (list, tuple)):
        for o in out[1:]:
            if is_tensor(o) and o.ndim == 1 and o.shape[0] == c:
                ctx.unify(o.axes[0], channels)


@rule("layer_norm", "native_layer_norm", "rms_norm", "_fused_rms_norm")
def layer_norm(ctx: Context, p: dict, out):
    x = p["input"]
    y = _first(out)
    same_axes(ctx, x, y)
    n = len(p["normalized_shape"])
    for key in ("weight", "bias"):
        t = p.get(key)
        if is_tensor(t):
            for i in range(n):
                if t.shape[i] > 1:
                    ctx.unify(t.axes[i], x.axes[x.ndim - n + i])
    if isinstance(out, (list, tuple)):
        for o in out[1:]:
            if is_tensor(o):
                broadcast(ctx, x, o)


@rule("group_norm", "native_group_norm")
def group_norm(ctx: Context, p: dict, out):
    """GroupNorm: the channel axis is (groups, channels per group)."""
    x = p["input"]
    y = _first(out)
    same_axes(ctx, x, y)
    groups = int(p.get("num_groups", p.get("group", 1)))
    c = x.shape[1]
    g = ctx.atoms.axis(groups)
    if 1 < groups < c:
        ctx.unify(x.axes[1], g + ctx.atoms.axis(c // groups))
    elif groups == c:
        ctx.unify(x.axes[1], g)
    for key in ("weight", "bias"):
        t = p.get(key)
        if is_tensor(t):
            ctx.unify(t.axes[0], x.axes[1])
    if isinstance(out, (list, tuple)):
        for o in out[1:]:
            if is_tensor(o) and o.ndim == 2:
                if o.shape[0] > 1:
                    ctx.unify(o.axes[0], x.axes[0])
                ctx.unify(o.axes[1], g)


@rule("_weight_norm")
def weight_norm(ctx: Context, p: dict, out):
    """w = g * v / ||v|| with the norm over every axis but `dim` (all axes when g is a
    scalar): permuting v's axes leaves each norm alone, and g moves with v's axis `dim`."""
    v, g = p["v"], p["g"]
    w = _first(out)
    same_axes(ctx, v, w)
    for i in range(min(v.ndim, g.ndim)):
        if g.shape[i] == v.shape[i] and g.shape[i] > 1:
            ctx.unify(g.axes[i], v.axes[i])
