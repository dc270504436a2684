"""Ops that move, split, merge, slice or join axes.

Reshapes carve factor lists (a flat 768 becomes (12, 64) factors); slicing along an
axis depends on the order of its entries, so that axis is fixed (indexing: `indexing`);
splits and joins cut the axis into chunks of the parts' greatest common size g and add
a fixed outer factor (`_chunks`).
"""
from __future__ import annotations

from math import gcd

from ..context import Context, TensorValue
from .common import is_tensor, norm_dim, same_axes
from .registry import rule


def _reshape(ctx: Context, x: TensorValue, out: TensorValue) -> TensorValue:
    """Out axes are views of x's factor lists, grouped where the sizes multiply up."""
    ins = [i for i in range(x.ndim) if x.shape[i] != 1]
    outs = [j for j in range(out.ndim) if out.shape[j] != 1]
    axes: list[list[int]] = [[] for _ in range(out.ndim)]
    i = j = 0
    while i < len(ins) and j < len(outs):
        gi, gj = [ins[i]], [outs[j]]
        pi, pj = x.shape[ins[i]], out.shape[outs[j]]
        i, j = i + 1, j + 1
        while pi != pj:
            if pi < pj:
                gi.append(ins[i])
                pi *= x.shape[ins[i]]
                i += 1
            else:
                gj.append(outs[j])
                pj *= out.shape[outs[j]]
                j += 1
        carved = ctx.atoms.view([a for k in gi for a in x.axes[k]], [out.shape[k] for k in gj])
        for k, a in zip(gj, carved):
            axes[k] = a
    return TensorValue(out.shape, axes, out.node)


@rule("view", "reshape", "_unsafe_view", "flatten", "unflatten", "view_as", "reshape_as", "_reshape_alias", "squeeze", "unsqueeze")
def reshape(ctx: Context, p: dict, out: TensorValue):
    return _reshape(ctx, p["self"], out)


@rule("permute")
def permute(ctx: Context, p: dict, out: TensorValue):
    x = p["self"]
    dims = [norm_dim(d, x.ndim) for d in p["dims"]]
    return TensorValue(out.shape, [x.axes[d] for d in dims], out.node)


@rule("transpose", "swapaxes", "swapdims")
def transpose(ctx: Context, p: dict, out: TensorValue):
    x = p["self"]
    names = [k for k in p if k != "self"]
    d0, d1 = (norm_dim(p[names[0]], x.ndim), norm_dim(p[names[1]], x.ndim)) if x.ndim else (0, 0)
    axes = list(x.axes)
    if x.ndim:
        axes[d0], axes[d1] = axes[d1], axes[d0]
    return TensorValue(out.shape, axes, out.node)


@rule("t", "numpy_T", "mT")
def t(ctx: Context, p: dict, out: TensorValue):
    x = p["self"]
    return TensorValue(out.shape, list(reversed(x.axes)) if x.ndim <= 2 else x.axes[:-2] + [x.axes[-1], x.axes[-2]], out.node)


@rule("movedim")
def movedim(ctx: Context, p: dict, out: TensorValue):
    x = p["self"]
    src, dst = p["source"], p["destination"]
    src = [src] if isinstance(src, int) else list(src)
    dst = [dst] if isinstance(dst, int) else list(dst)
    src = [norm_dim(d, x.ndim) for d in src]
    dst = [norm_dim(d, x.ndim) for d in dst]
    order = [None] * x.ndim
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(i for i in range(x.ndim) if i not in src)
    order = [o if o is not None else next(rest) for o in order]
    return TensorValue(out.shape, [x.axes[o] for o in order], out.node)


@rule("expand", "expand_as", "broadcast_to")
def expand(ctx: Context, p: dict, out: TensorValue):
    """Broadcast axes hold equal values: any permutation leaves them alone (fresh atoms)."""
    x = p["self"]
    offset = out.ndim - x.ndim
    axes = list(out.axes)
    for i in range(x.ndim):
        if x.shape[i] == out.shape[i + offset]:
            axes[i + offset] = x.axes[i]
    return TensorValue(out.shape, axes, out.node)


@rule("repeat")
def repeat(ctx: Context, p: dict, out: TensorValue):
    """Tiling: the output axis is (copies fixed, original factors)."""
    x, reps = p["self"], list(p["repeats"])
    offset = len(reps) - x.ndim
    axes = []
    for k, r in enumerate(reps):
        i = k - offset
        inner = x.axes[i] if i >= 0 else []
        axes.append(ctx.atoms.axis(r, fixed="repeat copies") + inner if r > 1 else inner)
    return TensorValue(out.shape, axes, out.node)


@rule("repeat_interleave")
def repeat_interleave(ctx: Context, p: dict, out: TensorValue):
    x, reps, dim = p["self"], p["repeats"], p.get("dim")
    if not is_tensor(x) or not isinstance(reps, int) or dim is None:
        ctx.unknown([v for v in p.values() if is_tensor(v)] + [out], "aten.repeat_interleave", "tensor repeats or flattening")
        return None
    d = norm_dim(dim, x.ndim)
    axes = list(x.axes)
    axes[d] = x.axes[d] + ctx.atoms.axis(reps, fixed="repeat copies")
    return TensorValue(out.shape, axes, out.node)


def _fix_axis(ctx: Context, x: TensorValue, d: int, why: str) -> None:
    ctx.atoms.fix(x.axes[d], why)


@rule("select")
def select(ctx: Context, p: dict, out: TensorValue):
    x = p["self"]
    d = norm_dim(p["dim"], x.ndim)
    _fix_axis(ctx, x, d, f"indexed by select at {ctx.where()}")
    axes = x.axes[:d] + x.axes[d + 1 :]
    layer = ctx.layer_states.get(ctx.node.name)
    if layer is not None:  # one layer of a recurrent final state: that layer's hidden units
        axes = axes[:-1] + [layer]
    return TensorValue(out.shape, axes, out.node)


@rule("slice", "narrow")
def slice_(ctx: Context, p: dict, out: TensorValue):
    x = p["self"]
    d = norm_dim(p.get("dim", 0), x.ndim)
    if out.shape[d] == x.shape[d]:
        return TensorValue(out.shape, list(x.axes), out.node)
    _fix_axis(ctx, x, d, f"sliced at {ctx.where()}")
    _fix_axis(ctx, out, d, f"sliced at {ctx.where()}")
    axes = list(x.axes)
    axes[d] = out.axes[d]
    return TensorValue(out.shape, axes, out.node)


def _chunks(ctx: Context, whole: list[int], parts: list[list[int]], sizes: list[int], why: str) -> None:
    """Tie an axis to its consecutive parts (a split's outputs, a join's inputs) through chunks of g.

    g is the greatest common size of the parts: the axis is (n/g fixed, g) and part j is
    (s_j/g fixed, g), one g atom shared by all. That is an equal-size split into chunks
    of g regrouped, so it is sound; it keeps the same within-chunk permutation in every
    chunk (a subgroup of the parts' own permutations: a spec factor is a product, not a
    direct sum). Equal parts are the case s_j = g. g = 1 (coprime sizes) fixes the axis.
    """
    g = gcd(*sizes)
    if g <= 1:  # coprime sizes (or nothing to cut)
        ctx.atoms.fix(whole, why)
        for part in parts:
            ctx.atoms.fix(part, why)
        return
    inner = ctx.atoms.axis(g)
    ctx.unify(whole, ctx.atoms.axis(sum(sizes) // g, fixed=why) + inner)
    for part, size in zip(parts, sizes):
        if size:
            ctx.unify(part, ctx.atoms.axis(size // g, fixed=why) + inner)


def _split_outputs(ctx: Context, x: TensorValue, d: int, outs: list[TensorValue]) -> list[TensorValue]:
    sizes = [o.shape[d] for o in outs]
    parts = [ctx.atoms.axis(n) for n in sizes]
    equal = len(set(sizes)) == 1
    _chunks(ctx, x.axes[d], parts, sizes, f"split into {'chunks' if equal else f'parts {sizes}'} at {ctx.where()}")
    results = []
    for o, part in zip(outs, parts):
        axes = list(x.axes)
        axes[d] = part
        results.append(TensorValue(o.shape, axes, o.node))
    return results


@rule("split", "split_with_sizes", "chunk", "tensor_split", "unsafe_split", "unsafe_chunk")
def split(ctx: Context, p: dict, out):
    x = p["self"]
    d = norm_dim(p.get("dim", 0), x.ndim)
    return _split_outputs(ctx, x, d, list(out))


@rule("unbind")
def unbind(ctx: Context, p: dict, out):
    x = p["self"]
    d = norm_dim(p.get("dim", 0), x.ndim)
    _fix_axis(ctx, x, d, f"unbound at {ctx.where()}")
    return [TensorValue(o.shape, x.axes[:d] + x.axes[d + 1 :], o.node) for o in out]


@rule("cat", "concat", "concatenate")
def cat(ctx: Context, p: dict, out: TensorValue):
    parts = [t for t in p["tensors"] if is_tensor(t) and t.shape != (0,)]
    d = norm_dim(p.get("dim", 0), out.ndim)
    sizes = [t.shape[d] for t in parts]
    for t in parts:
        same_axes(ctx, t, out, skip={d})
    if len(parts) == 1:
        ctx.unify(out.axes[d], parts[0].axes[d])
    elif parts:
        equal = len(set(sizes)) == 1
        why = f"concatenated{'' if equal else f' from parts {sizes}'} at {ctx.where()}"
        _chunks(ctx, out.axes[d], [t.axes[d] for t in parts], sizes, why)


@rule("stack")
def stack(ctx: Context, p: dict, out: TensorValue):
    parts = [t for t in p["tensors"] if is_tensor(t)]
    d = norm_dim(p.get("dim", 0), out.ndim)
    ctx.atoms.fix(out.axes[d], f"stacked at {ctx.where()}")
    for t in parts:
        for i in range(t.ndim):
            j = i if i < d else i + 1
            if t.shape[i] > 1:
                ctx.unify(t.axes[i], out.axes[j])


@rule("flip", "roll", "cumsum", "cumprod", "cummax", "cummin", "diff")
def order_dependent(ctx: Context, p: dict, out):
    """Ops that read positions along their dims: those axes are fixed."""
    x = p["self"]
    dims = p.get("dims", p.get("dim"))
    if dims is None or (isinstance(dims, (list, tuple)) and not dims):  # roll without dims: flattened
        ctx.fix(x, f"order-dependent op at {ctx.where()}")
        ctx.fix(out, f"order-dependent op at {ctx.where()}")
        return
    dims = [dims] if isinstance(dims, int) else list(dims)
    dims = {norm_dim(d, x.ndim) for d in dims}
    first = out[0] if isinstance(out, (list, tuple)) else out
    for o in (out if isinstance(out, (list, tuple)) else [out]):
        same_axes(ctx, x, o, skip=dims)
    for d in dims:
        _fix_axis(ctx, x, d, f"order-dependent op at {ctx.where()}")
        _fix_axis(ctx, first, d, f"order-dependent op at {ctx.where()}")


@rule("constant_pad_nd", "pad", "reflection_pad1d", "reflection_pad2d", "replication_pad1d", "replication_pad2d", "replication_pad3d", "reflection_pad3d")
def pad(ctx: Context, p: dict, out: TensorValue):
    x = p["self"]
    padding = list(p.get("pad", p.get("padding", [])))
    padded = {x.ndim - 1 - k // 2 for k in range(len(padding)) if padding[k] != 0}
    same_axes(ctx, x, out, skip=padded)
    for d in padded:
        _fix_axis(ctx, x, d, f"padded at {ctx.where()}")
        _fix_axis(ctx, out, d, f"padded at {ctx.where()}")
