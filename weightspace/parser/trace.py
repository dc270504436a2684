"""Trace a module with torch.export and walk its ATen graph through the op rules.

The result, a `Trace`, maps every state-dict key to the atoms of its axes; the
parameter graph builder and the spec builder both read it.
"""
from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import TraceError
from .context import Context, TensorValue, tensors_in
from .rules import lookup
from .runtime import mode, tied_aliases

_MAX_DEPTH = 8


def tensor_leaves(obj, depth: int = 0) -> list[torch.Tensor]:
    """Tensor leaves of a nested output: tuples, dicts, dataclasses, cache objects."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if depth > _MAX_DEPTH or obj is None or isinstance(obj, (str, bytes, int, float, bool)):
        return []
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in tensor_leaves(v, depth + 1)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in tensor_leaves(v, depth + 1)]
    if dataclasses.is_dataclass(obj):
        return [t for f in dataclasses.fields(obj) for t in tensor_leaves(getattr(obj, f.name), depth + 1)]
    if isinstance(obj, nn.Module):
        return []
    if hasattr(obj, "__dict__"):
        return [t for v in vars(obj).values() for t in tensor_leaves(v, depth + 1)]
    return []


class _Leaves(nn.Module):
    """Wraps a model so that export sees a flat tuple of its output tensors."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args, **kwargs):
        return tuple(tensor_leaves(self.model(*args, **kwargs)))


@dataclass
class Trace:
    """A walked export: atoms per state-dict entry, plus what the walk learned."""

    program: Any
    ctx: Context
    values: dict[str, Any]
    entries: dict[str, TensorValue]
    buffers: set[str]
    aliases: dict[str, str]
    node_of_key: dict[str, str] = field(default_factory=dict)


def export(model: nn.Module, args: tuple, kwargs: dict | None = None):
    """torch.export of `model` (wrapped to flatten outputs), or a TraceError saying why."""
    try:
        return torch.export.export(_Leaves(model), tuple(args), kwargs or {}, strict=False)
    except Exception as err:  # torch.export raises many unrelated types
        raise TraceError(
            f"torch.export could not trace {type(model).__name__}: {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}. If the model cannot be exported, "
            "build the spec from its state dict with weightspace.infer_spec(state_dict) "
            "(plain MLP/SIREN/conv chains) or write it by hand."
        ) from err


def _bind(target, args, kwargs) -> dict:
    p = {}
    for i, a in enumerate(target._schema.arguments):
        if i < len(args):
            p[a.name] = args[i]
        elif a.name in kwargs:
            p[a.name] = kwargs[a.name]
        elif a.has_default_value():
            p[a.name] = a.default_value
        else:
            p[a.name] = None
    return p


def _fresh(ctx: Context, meta):
    if isinstance(meta, torch.Tensor):
        return ctx.fresh(meta.shape)
    if isinstance(meta, (list, tuple)):
        return type(meta)(_fresh(ctx, m) for m in meta) if isinstance(meta, tuple) else [_fresh(ctx, m) for m in meta]
    if isinstance(meta, torch.SymInt):
        return int(meta)
    return meta


def walk(program, shapes: dict[str, tuple], aliases: dict[str, str], strict: bool = False) -> Trace:
    """Run every node of an exported program through its symmetry rule.

    shapes: the model's state dict shapes (keys in state-dict order); entries the
    forward never reads are fixed, since nothing constrains them.
    """
    ctx = Context(strict=strict)
    sig = program.graph_signature
    kinds = {s.arg.name: s for s in sig.input_specs}
    state = set(shapes)
    values: dict[str, Any] = {}
    entries: dict[str, TensorValue] = {}
    buffers: set[str] = set()
    node_of_key: dict[str, str] = {}
    for node in program.graph.nodes:
        ctx.node = node
        if node.op == "placeholder":
            value = _fresh(ctx, node.meta.get("val"))
            values[node.name] = value
            spec = kinds.get(node.name)
            kind = spec.kind.name if spec is not None else "USER_INPUT"
            target = spec.target.removeprefix("model.") if spec is not None and spec.target else None
            target = aliases.get(target, target)
            if kind in ("PARAMETER", "BUFFER") and target in state:
                entries[target] = value
                node_of_key[target] = node.name
                if kind == "BUFFER":
                    buffers.add(target)
            elif kind == "BUFFER":
                ctx.fix(value, f"non-persistent buffer {target} (not in the state dict)")
            elif kind in ("CONSTANT_TENSOR", "CUSTOM_OBJ"):
                ctx.fix(value, f"constant tensor {target}")
            else:
                ctx.fix(value, "model input")
        elif node.op == "call_function":
            values[node.name] = _call(ctx, node, values)
        elif node.op == "output":
            _outputs(ctx, node, values, sig, entries)
    ctx.node = None
    for key, shape in shapes.items():
        if key not in entries and key not in aliases:
            entries[key] = ctx.fresh(shape, fixed="not used by the traced forward")
    entries = {k: entries[k] for k in shapes if k in entries}
    return Trace(program, ctx, values, entries, buffers, aliases, node_of_key)


def _resolve(arg, values):
    return torch.fx.node.map_arg(arg, lambda n: values.get(n.name))


def _call(ctx: Context, node, values):
    target = node.target
    args = _resolve(node.args, values)
    kwargs = _resolve(node.kwargs, values)
    if target is operator.getitem:
        seq, idx = args
        return seq[idx] if isinstance(seq, (list, tuple)) else None
    out = _fresh(ctx, node.meta.get("val"))
    if isinstance(target, torch._ops.OpOverload):
        fn = lookup(target._overloadpacket.__name__)
        if fn is not None:
            result = fn(ctx, _bind(target, args, kwargs), out)
            return out if result is None else result
        name = str(target)
    else:
        name = getattr(target, "__name__", str(target))
    touched = tensors_in(list(args)) + tensors_in(list(kwargs.values())) + tensors_in(out)
    if touched:
        ctx.unknown([*tensors_in(list(args)), *tensors_in(list(kwargs.values())), out], name)
    return out


def _outputs(ctx: Context, node, values, sig, entries: dict[str, TensorValue]) -> None:
    outs = _resolve(node.args[0], values)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    for spec, value in zip(sig.output_specs, outs):
        kind = spec.kind.name
        if kind == "BUFFER_MUTATION":
            buf = entries.get(spec.target.removeprefix("model.")) if spec.target else None
            if buf is not None and isinstance(value, TensorValue):
                for a, b in zip(buf.axes, value.axes):
                    ctx.unify(a, b)
                continue
        ctx.fix(value, "model output" if kind == "USER_OUTPUT" else f"mutated {kind.lower()}")


def trace(model: nn.Module, args: tuple, kwargs: dict | None = None, strict: bool = False) -> Trace:
    """Export `model` on example inputs in eval mode (its modes restored after) and walk the
    graph; see `walk`. Eval mode is the mode activation sites are read in; verification
    checks train mode numerically."""
    if not isinstance(model, nn.Module):
        raise TraceError(f"expected an nn.Module, got {type(model).__name__}")
    if not isinstance(args, tuple):
        args = (args,)
    aliases = tied_aliases(model)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    with mode(model, False):
        program = export(model, args, kwargs)
    result = walk(program, shapes, aliases, strict=strict)
    result.buffers |= {k for k, _ in model.named_buffers(remove_duplicate=False) if k in shapes}
    return result
