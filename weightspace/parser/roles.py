"""What the spec alone cannot say about a tensor, read off the parser's trace.

The spec knows which axes a permutation moves, not which axis of a weight is its
input side, whether a vector is a bias or a norm gain, or which projection of an
attention layer is the query. The graph builder needs these; this pass walks the
exported ATen graph the parser walked (no second export) and records, per state-dict
entry, the op that first consumes it, its contracted (input-side) axes, its attention
role and the union-find roots of its axes (axes with equal roots index the same units,
fixed or not).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .context import TensorValue, packet, tensors_in
from .trace import Trace

# ops that only re-view or re-type a tensor: a parameter seen through them is still itself
_VIEWS = {
    "t", "permute", "transpose", "view", "reshape", "_unsafe_view", "unsqueeze", "squeeze", "expand",
    "_to_copy", "to", "clone", "contiguous", "alias", "detach", "lift_fresh_copy", "type_as", "flatten",
    "slice", "select", "narrow",
}
_SOFTMAX = {"softmax", "_softmax", "_safe_softmax", "log_softmax"}
_SDPA_ARGS = {"query": "q", "key": "k", "value": "v"}
_PROBS, _ATTN = "<probs>", "<attn>"


@dataclass(frozen=True)
class Role:
    """How one state-dict entry is used by the traced forward.

    op: ATen op (overload packet) that first consumes the entry ("" if unused);
    arg: the schema argument it enters as ("weight", "bias", "running_mean", "mat2", ...);
    order: rank of that op in execution order (unused entries come last);
    in_axes: axes contracted with the activation (empty where the op does not say);
    attention: "q", "k", "v", "o" or "qkv" (a fused projection feeding several), else None;
    roots: per axis, the union-find roots of its factors of size > 1.
    """

    key: str
    op: str
    arg: str
    order: int
    in_axes: tuple[int, ...]
    attention: str | None
    roots: tuple[tuple[int, ...], ...]


def _arg_nodes(node) -> list[tuple[str, torch.fx.Node]]:
    """(schema argument name, fx node) for every node among the op's arguments."""
    names: list[str] = []
    if isinstance(node.target, torch._ops.OpOverload):
        names = [a.name for a in node.target._schema.arguments]
    out: list[tuple[str, torch.fx.Node]] = []
    for i, a in enumerate(node.args):
        name = names[i] if i < len(names) else str(i)
        torch.fx.node.map_arg(a, lambda n, name=name: out.append((name, n)))
    for k, a in node.kwargs.items():
        torch.fx.node.map_arg(a, lambda n, k=k: out.append((k, n)))
    return out


def _roots(tr: Trace, value) -> set[int]:
    atoms = tr.ctx.atoms
    return {r for t in tensors_in(value) for axis in t.axes for r in atoms.leaves(axis) if atoms.size(r) > 1}


def _axis_roots(tr: Trace, value: TensorValue) -> tuple[tuple[int, ...], ...]:
    atoms = tr.ctx.atoms
    return tuple(tuple(r for r in atoms.leaves(axis) if atoms.size(r) > 1) for axis in value.axes)


class _Walk:
    """One forward pass over the exported graph collecting uses and attention tags."""

    def __init__(self, tr: Trace):
        self.tr = tr
        self.key_of = {n: k for k, n in tr.node_of_key.items()}
        self.param: dict[str, set[str]] = {}  # node -> entries it is a pure view of / computed from
        self.act: set[str] = set()  # nodes depending on a model input
        self.tags: dict[str, set[str]] = {}  # node -> projections (and markers) flowing into it
        self.use: dict[str, tuple[int, str, str, torch.fx.Node]] = {}
        self.attention: dict[str, set[str]] = {}

    def run(self) -> None:
        sig = {s.arg.name: s.kind.name for s in self.tr.program.graph_signature.input_specs}
        for index, node in enumerate(self.tr.program.graph.nodes):
            if node.op == "placeholder":
                if node.name in self.key_of:
                    self.param[node.name] = {self.key_of[node.name]}
                elif sig.get(node.name, "USER_INPUT") == "USER_INPUT":
                    self.act.add(node.name)
            elif node.op == "call_function":
                self._call(index, node)

    def _call(self, index: int, node) -> None:
        args = _arg_nodes(node)
        op = packet(node) or getattr(node.target, "__name__", str(node.target))
        params = [(name, n) for name, n in args if n.name in self.param]
        acts = [(name, n) for name, n in args if n.name in self.act]
        for name, n in params:
            for key in self.param[n.name]:
                if key not in self.use and not (op in _VIEWS and not acts):
                    self.use[key] = (index, op, name, node)
        if not acts:
            if params:
                self.param[node.name] = set().union(*(self.param[n.name] for _, n in params))
            return
        self.act.add(node.name)
        self._tag(node, op, args, params, acts)

    def _tag(self, node, op: str, args, params, acts) -> None:
        """Forward-propagate projection tags; record q/k/v/o where attention meets them."""
        incoming = set().union(*(self.tags.get(n.name, set()) for _, n in acts))
        projections = [k for _, n in params for k in self.param[n.name] if len(self.tr.entries[k].shape) >= 2]
        if projections:
            if _ATTN in incoming:
                for k in projections:
                    self.attention.setdefault(k, set()).add("o")
            self.tags[node.name] = set(projections)
            return
        if op in _SOFTMAX:
            self.tags[node.name] = {_PROBS}
            return
        if op in ("scaled_dot_product_attention",) or op.startswith("_scaled_dot_product"):
            for name, n in acts:
                role = _SDPA_ARGS.get(name)
                for k in self.tags.get(n.name, set()) if role else ():
                    if not k.startswith("<"):
                        self.attention.setdefault(k, set()).add(role)
            self.tags[node.name] = {_ATTN}
            return
        if op in ("matmul", "bmm", "mm") and len(acts) == 2:
            (_, a), (_, b) = acts
            ta, tb = self.tags.get(a.name, set()), self.tags.get(b.name, set())
            if _PROBS in ta:
                self._mark(tb, "v")
                self.tags[node.name] = {_ATTN}
                return
            self._mark(ta, "q")
            self._mark(tb, "k")
            self.tags[node.name] = set()
            return
        self.tags[node.name] = incoming

    def _mark(self, tags: set[str], role: str) -> None:
        for k in tags:
            if not k.startswith("<"):
                self.attention.setdefault(k, set()).add(role)


def _contracted(tr: Trace, act: set[str], key: str, op: str, node) -> tuple[int, ...]:
    """Axes of `key` whose units meet the op's activation inputs and leave through none of its outputs."""
    value = tr.entries[key]
    if op == "embedding":
        return (0,)
    seen = _roots(tr, [tr.values.get(n.name) for _, n in _arg_nodes(node) if n.name in act])
    produced = _roots(tr, tr.values.get(node.name))
    axis_roots = _axis_roots(tr, value)
    return tuple(
        i for i, roots in enumerate(axis_roots) if roots and set(roots) <= seen and not set(roots) & produced
    )


def roles_from_trace(tr: Trace) -> dict[str, Role]:
    """Role of every state-dict entry of a walked trace (see `Role`)."""
    walk = _Walk(tr)
    walk.run()
    ranked = sorted({index for index, *_ in walk.use.values()})
    rank = {index: r for r, index in enumerate(ranked)}
    out: dict[str, Role] = {}
    for i, (key, value) in enumerate(tr.entries.items()):
        roots = _axis_roots(tr, value)
        if key not in walk.use:
            out[key] = Role(key, "", "", len(ranked) + i, (), None, roots)
            continue
        index, op, arg, node = walk.use[key]
        in_axes = _contracted(tr, walk.act, key, op, node) if len(value.shape) >= 2 else ()
        found = walk.attention.get(key, set())
        attention = None if not found else next(iter(found)) if len(found) == 1 else "qkv"
        out[key] = Role(key, op, arg, rank[index], in_axes, attention, roots)
    return out

