"""Convolutions (incl. grouped, depthwise, transposed) and pooling.

Channels behave like linear units; kernel taps and spatial positions are fixed.
A grouped conv sees its channel axis as (groups, channels per group): permuting
whole groups, or channels within every group alike, commutes with it.
"""
from __future__ import annotations

from ..context import Context, TensorValue
from .common import is_tensor
from .registry import rule


def _conv(ctx: Context, x: TensorValue, w: TensorValue, b, out: TensorValue, groups: int, transposed: bool) -> None:
    where = ctx.where()
    for axis in w.axes[2:]:
        ctx.atoms.fix(axis, "kernel taps")
    for t in (x, out):
        for axis in t.axes[2:]:
            ctx.atoms.fix(axis, f"spatial positions (conv at {where})")
    if x.ndim == w.ndim:
        ctx.unify(out.axes[0], x.axes[0])
    cx = 1 if x.ndim == w.ndim else 0
    in_w, out_w = (0, 1) if transposed else (1, 0)
    if groups == 1:
        ctx.unify(x.axes[cx], w.axes[in_w])
        out_ch = w.axes[out_w]
    else:
        g = ctx.atoms.axis(groups)
        if transposed:
            ctx.unify(w.axes[0], g + ctx.atoms.axis(w.shape[0] // groups))
            ctx.unify(x.axes[cx], w.axes[0])
            out_ch = g + w.axes[1]
        else:
            ctx.unify(x.axes[cx], g + w.axes[1])
            ctx.unify(w.axes[0], g + ctx.atoms.axis(w.shape[0] // groups))
            out_ch = w.axes[0]
    ctx.unify(out.axes[cx], out_ch)
    ctx.atoms.hint(out_ch, "channel")
    if is_tensor(b):
        ctx.unify(b.axes[0], out.axes[cx])


@rule("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "convolution", "_convolution", "cudnn_convolution", "mkldnn_convolution")
def conv(ctx: Context, p: dict, out: TensorValue):
    name = ctx.node.target._overloadpacket.__name__
    transposed = bool(p.get("transposed", False)) or name.startswith("conv_transpose")
    _conv(ctx, p["input"], p["weight"], p.get("bias"), out, int(p.get("groups", 1) or 1), transposed)


@rule(
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "_adaptive_avg_pool2d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "max_pool2d_with_indices", "upsample_nearest2d",
    "upsample_bilinear2d", "upsample_nearest1d", "upsample_linear1d", "_upsample_nearest_exact2d",
    "lp_pool2d", "pixel_shuffle", "pixel_unshuffle",
)
def pool(ctx: Context, p: dict, out):
    """Spatial ops act per channel: leading (batch, channel) axes pass, spatial axes fixed."""
    x = p.get("self", p.get("input"))
    outs = out if isinstance(out, (list, tuple)) else [out]
    name = ctx.node.target._overloadpacket.__name__
    lead = 2 if x.ndim >= 3 else 1
    spatial = x.ndim - lead
    if "pixel" in name:
        ctx.fix(x, f"{name} mixes channels and positions")
        ctx.fix(out, f"{name} mixes channels and positions")
        return
    for o in outs:
        for i in range(lead):
            if x.shape[i] > 1 and x.shape[i] == o.shape[i]:
                ctx.unify(x.axes[i], o.axes[i])
        for axis in o.axes[lead:]:
            ctx.atoms.fix(axis, "spatial positions")
    for axis in x.axes[x.ndim - spatial :]:
        ctx.atoms.fix(axis, "spatial positions")


@rule("channel_shuffle", "native_channel_shuffle")
def channel_shuffle(ctx: Context, p: dict, out: TensorValue):
    """Channels (groups, per group) come out as (per group, groups): both factors survive."""
    x, groups = p["self"], int(p["groups"])
    c = x.shape[1]
    if groups <= 1 or groups >= c:
        return TensorValue(out.shape, list(x.axes), out.node)
    outer, inner = ctx.atoms.view(x.axes[1], [groups, c // groups])
    axes = list(x.axes)
    axes[1] = inner + outer
    return TensorValue(out.shape, axes, out.node)
