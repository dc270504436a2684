"""Pointwise and broadcasting ops: axes that line up are one axis.

Pointwise maps commute with any permutation of positions, so the only
constraint is that broadcast-aligned axes of the operands and the result carry the
same permutation.
"""
from __future__ import annotations

from ..context import Context
from .common import broadcast, is_tensor
from .registry import rule

POINTWISE = (
    "add", "sub", "rsub", "mul", "div", "true_divide", "floor_divide", "pow", "neg", "abs",
    "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "reciprocal",
    "square", "sin", "cos", "tan", "sinh", "cosh", "tanh", "asin", "acos", "atan", "atan2",
    "sigmoid", "logit", "relu", "relu6", "gelu", "silu", "mish", "elu", "selu", "celu",
    "leaky_relu", "hardtanh", "hardswish", "hardsigmoid", "softplus", "softsign", "erf",
    "erfc", "sign", "sgn", "clamp", "clamp_min", "clamp_max", "clip", "where", "maximum",
    "minimum", "fmax", "fmin", "floor", "ceil", "round", "trunc", "frac", "fmod", "remainder",
    "lerp", "addcmul", "addcdiv", "eq", "ne", "lt", "gt", "le", "ge", "logical_and",
    "logical_or", "logical_not", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_not",
    "bitwise_xor", "isnan", "isinf", "isfinite", "nan_to_num", "masked_fill", "copy",
    "clone", "contiguous", "alias", "detach", "lift_fresh_copy", "_to_copy", "to", "type_as",
    "dropout", "feature_dropout", "alpha_dropout", "hypot", "xlogy",
    "logaddexp", "sinc", "deg2rad", "rad2deg", "fill", "zero", "positive", "conj", "real",
    "_conj", "resolve_conj", "resolve_neg", "__and__", "__or__", "__xor__", "__invert__",
    "__lshift__", "__rshift__",
)

@rule(*POINTWISE)
def pointwise(ctx: Context, p: dict, out):
    tensors = [v for v in p.values() if is_tensor(v)]
    broadcast(ctx, out, *tensors)
    summed = ctx.node.target._overloadpacket.__name__ in ("add", "sub", "add_", "sub_")
    if summed and len(tensors) == 2 and tensors[0].shape == tensors[1].shape and tensors[0].ndim >= 2:
        for axis in out.axes:
            ctx.atoms.hint(axis, "sum")


@rule("prelu", "_prelu_kernel")
def prelu(ctx: Context, p: dict, out):
    """PReLU: a per-channel slope (dim 1, or dim 0 of a 1-D input) moves with its channel."""
    x, w = p["self"], p["weight"]
    broadcast(ctx, out, x)
    if is_tensor(w) and w.ndim == 1 and w.shape[0] > 1:
        ctx.unify(w.axes[0], x.axes[1 if x.ndim >= 2 else 0])
    elif is_tensor(w):
        broadcast(ctx, out, w)


@rule("arange", "range", "linspace", "logspace", "randperm", "eye")
def positions(ctx: Context, p: dict, out):
    """Tensors whose values depend on position: every axis is fixed."""
    ctx.fix(out, f"position-dependent values ({ctx.node.target._overloadpacket.__name__})")


@rule("tril", "triu")
def triangle(ctx: Context, p: dict, out):
    x = p["self"]
    broadcast(ctx, out, x)
    for t in (x, out):
        for axis in t.axes[-2:]:
            ctx.atoms.fix(axis, f"triangular mask at {ctx.where()}")


@rule("native_dropout")
def native_dropout(ctx: Context, p: dict, out):
    for o in out:
        broadcast(ctx, o, p["input"])


@rule("zeros_like", "ones_like", "full_like", "empty_like", "rand_like", "randn_like", "zeros", "ones", "full", "empty", "new_zeros", "new_ones", "new_full", "new_empty", "scalar_tensor")
def uniform_factory(ctx: Context, p: dict, out):
    """Constant-valued tensors (and i.i.d. noise) look the same under any permutation."""
    ctx.uniform_nodes.add(ctx.node.name)


@rule("_assert_tensor_metadata", "_assert_async", "_assert_scalar", "sym_size", "sym_numel", "sym_stride", "sym_constrain_range_for_size", "_functional_assert_async", "set_grad_enabled")
def no_constraint(ctx: Context, p: dict, out):
    return None
