"""Trace a module with torch.export and walk its ATen graph through the op rules.

The result, a `Trace`, maps every state-dict key to the atoms of its axes; the
parameter graph builder and the spec builder both read it.
"""
from __future__ import annotations

import dataclasses
import operator
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn
from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

from ..errors import TraceError
from .addressing import fix_addressed, screen
from .context import Context, TensorValue, packet, tensors_in
from .rules import lookup
from .runtime import mode, tied_aliases
from .shapes import dynamic_guards, recorded_guards, report, shape_note

_MAX_DEPTH = 8
# ops that read only a tensor's metadata (shape, dtype): their inputs are not read by value
_METADATA = {
    "sym_size", "sym_numel", "sym_stride", "sym_storage_offset", "_assert_tensor_metadata",
    "zeros_like", "ones_like", "full_like", "empty_like", "rand_like", "randn_like",
    "new_zeros", "new_ones", "new_full", "new_empty",
}
UNREAD = "not read by the traced call (another call path may read it)"


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


class _Packed(nn.Module):
    """`_Leaves` called as (args, kwargs), two arguments, so that every input tensor can be
    given a dynamic-shape spec (torch.export's dynamic_shapes cannot address *args)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, args, kwargs):
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


def read_nodes(graph) -> set[str]:
    """Names of the nodes whose values reach an output: the output node's inputs, closed
    backwards, except through metadata ops (a tensor used only for its shape is not read)."""
    out = next(n for n in reversed(graph.nodes) if n.op == "output")
    seen: set[str] = set()
    stack = list(out.all_input_nodes)
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        if packet(node) not in _METADATA:
            stack.extend(node.all_input_nodes)
    return seen


def walk(programs, shapes: dict[str, tuple], aliases: dict[str, str], strict: bool = False) -> Trace:
    """Run every node of one or more exported programs (call paths of one model) through
    its symmetry rule, on one atom store: the spec must hold on every path walked.

    shapes: the model's state dict shapes (keys in state-dict order). Entries no walked
    call reads by value (not lifted, or lifted but used only for their shape) are fixed:
    another call path may read them, and nothing here says how. Ops whose values reach
    no output are skipped, so a shape-only use constrains nothing. The first program is
    the one the Trace keeps (its values, its nodes).
    """
    programs = programs if isinstance(programs, (list, tuple)) else [programs]
    ctx = Context(strict=strict)
    entries: dict[str, TensorValue] = {}
    buffers: set[str] = set()
    read: set[str] = set()
    first = None
    for program in programs:
        try:
            walked = _walk(ctx, program, shapes, aliases, entries, buffers, read)
        except GuardOnDataDependentSymNode as err:
            raise TraceError(
                f"data-dependent shape at {ctx.where()}: an op whose output size depends on "
                "tensor values (torch.where(mask), nonzero, boolean-mask indexing, unique) cannot be "
                "parsed; trace a call path without it, or write the spec by hand"
            ) from err
        first = first or walked
    ctx.node = None
    unread = [k for k in shapes if k not in read and k not in aliases]
    for key in unread:
        if key in entries:
            ctx.fix(entries[key], UNREAD)
        else:
            entries[key] = ctx.fresh(shapes[key], fixed=UNREAD)
    unread = [k for k in unread if any(n > 1 for n in shapes[k])]  # a scalar has nothing to permute
    if unread:
        message = (f"{len(unread)} state-dict entries are {UNREAD} and were fixed: {', '.join(unread[:8])}"
                   + (", ..." if len(unread) > 8 else "")
                   + "; the spec holds on the traced call(s) only (pass other_calls= to cover the others)")
        ctx.notes.append(message)
        warnings.warn(message, stacklevel=3)
    values, node_of_key = first
    entries = {k: entries[k] for k in shapes if k in entries}
    return Trace(programs[0], ctx, values, entries, buffers, aliases, node_of_key)


def _walk(ctx: Context, program, shapes, aliases, entries: dict, buffers: set, read: set):
    """Walk one program; entries already seen on an earlier path keep their atoms.
    Adds the keys this path reads to `read`; returns (values, node_of_key)."""
    live = read_nodes(program.graph)
    sig = program.graph_signature
    kinds = {s.arg.name: s for s in sig.input_specs}
    values: dict[str, Any] = {}
    node_of_key: dict[str, str] = {}
    for node in program.graph.nodes:
        ctx.node = node
        if node.op == "placeholder":
            spec = kinds.get(node.name)
            kind = spec.kind.name if spec is not None else "USER_INPUT"
            target = spec.target.removeprefix("model.") if spec is not None and spec.target else None
            target = aliases.get(target, target)
            if kind in ("PARAMETER", "BUFFER") and target in shapes:
                value = entries.setdefault(target, _fresh(ctx, node.meta.get("val")))
                node_of_key[target] = node.name
                if kind == "BUFFER":
                    buffers.add(target)
                if node.name in live:
                    read.add(target)
            else:
                value = _fresh(ctx, node.meta.get("val"))
                if kind == "BUFFER":
                    ctx.fix(value, f"non-persistent buffer {target} (not in the state dict)")
                elif kind in ("CONSTANT_TENSOR", "CUSTOM_OBJ"):
                    ctx.fix(value, f"constant tensor {target}")
                else:
                    ctx.fix(value, "model input")
            values[node.name] = value
        elif node.op == "call_function":
            if node.name in live:
                values[node.name] = _call(ctx, node, values)
            else:
                values[node.name] = _fresh(ctx, node.meta.get("val"))
        elif node.op == "output":
            _outputs(ctx, node, values, sig, entries)
    return values, node_of_key


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
    op = packet(node)
    fn = lookup(op) if op else None
    carried = screen(ctx, op or getattr(target, "__name__", str(target)), [args, kwargs], fn, op in _METADATA)
    if isinstance(target, torch._ops.OpOverload):
        if fn is not None:
            result = fn(ctx, _bind(target, args, kwargs), out)
            result = out if result is None else result
            if carried is not None:
                result.addresses = carried
            return result
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
        fix_addressed(ctx, value, "index values returned" if kind == "USER_OUTPUT" else f"index values in a {kind.lower()}")
        if kind == "BUFFER_MUTATION":
            buf = entries.get(spec.target.removeprefix("model.")) if spec.target else None
            if buf is not None and isinstance(value, TensorValue):
                for a, b in zip(buf.axes, value.axes):
                    ctx.unify(a, b)
                continue
        ctx.fix(value, "model output" if kind == "USER_OUTPUT" else f"mutated {kind.lower()}")


def trace(model: nn.Module, args: tuple, kwargs: dict | None = None, strict: bool = False,
          other_calls: Sequence[tuple[tuple, dict]] = (), check_shapes: bool = False) -> Trace:
    """Export `model` on example inputs in eval mode (its modes restored after) and walk the
    graph; see `walk`. `other_calls`: more (args, kwargs) call paths, exported and walked
    on the same atoms. Eval mode is the mode activation sites are read in; verification
    checks train mode numerically.

    Each call's shape guards are noted, and a condition on shapes warned about
    (`parser.shapes`): those torch.export records for the static export (dimensions the
    caller marked dynamic), or with `check_shapes=True` those of one more export per call
    with every input dimension dynamic (a branch on `x.shape` shows there)."""
    if not isinstance(model, nn.Module):
        raise TraceError(f"expected an nn.Module, got {type(model).__name__}")
    if not isinstance(args, tuple):
        args = (args,)
    aliases = tied_aliases(model)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    calls = [(args, kwargs or {}), *((tuple(a), dict(k or {})) for a, k in other_calls)]
    with mode(model, False):
        programs = [export(model, a, k) for a, k in calls]
        guards = [dynamic_guards(_Packed(model), a, k) for a, k in calls] if check_shapes else [
            recorded_guards(p) for p in programs]
    result = walk(programs, shapes, aliases, strict=strict)
    for i, ((a, k), found) in enumerate(zip(calls, guards)):
        call = "the example call" if i == 0 else f"other call {i}"
        result.ctx.notes.append(f"{call}: {shape_note(a, k)}")
        report(result.ctx, found, call)
    result.buffers |= {k for k, _ in model.named_buffers(remove_duplicate=False) if k in shapes}
    return result
