"""Fused scaled-dot-product attention.

q·k contracts the head dimension, the value dimension passes to the output, and
batch/head axes broadcast. Positions are permutation-equivariant except under a
causal mask, which fixes them.
"""
from __future__ import annotations

from ..context import Context, TensorValue
from .common import broadcast, is_tensor
from .registry import rule


@rule(
    "scaled_dot_product_attention", "_scaled_dot_product_attention_math",
    "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_flash_attention", "_scaled_dot_product_cudnn_attention",
)
def sdpa(ctx: Context, p: dict, out):
    q, k, v = p["query"], p["key"], p["value"]
    o = out[0] if isinstance(out, (list, tuple)) else out
    ctx.unify(q.axes[-1], k.axes[-1])
    ctx.unify(o.axes[-1], v.axes[-1])
    ctx.unify(o.axes[-2], q.axes[-2])
    ctx.unify(k.axes[-2], v.axes[-2])
    ctx.atoms.hint(q.axes[-1], "head_dim")
    ctx.atoms.hint(v.axes[-1], "head_dim")
    lead = o.ndim - 2
    gqa = bool(p.get("enable_gqa", False))
    for t in (q, k, v):
        for i in range(t.ndim - 2):
            j = i + lead - (t.ndim - 2)
            if j < 0:
                continue
            if t.shape[i] == o.shape[j] and t.shape[i] > 1:
                ctx.unify(t.axes[i], o.axes[j])
            elif gqa and t is not q and i == t.ndim - 3 and o.shape[j] % t.shape[i] == 0:
                ctx.unify(o.axes[j], t.axes[i] + ctx.atoms.axis(o.shape[j] // t.shape[i]))
    if o.ndim >= 3:
        ctx.atoms.hint(o.axes[-3], "head")
    mask = p.get("attn_mask")
    if is_tensor(mask):
        scores = TensorValue((*o.shape[:-1], k.shape[-2]), [*o.axes[:-1], k.axes[-2]])
        broadcast(ctx, scores, mask)
    if p.get("is_causal"):
        ctx.atoms.fix(q.axes[-2], "positions (causal attention)")
        ctx.atoms.fix(k.axes[-2], "positions (causal attention)")
    if isinstance(out, (list, tuple)):
        for extra in out[1:]:
            ctx.fix(extra, "attention statistics")
