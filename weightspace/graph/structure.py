"""The structure of a parameter graph: nodes, edges and where each weight sits.

Built from a `WeightSpec` (plus, where available, the `Role`s read off the trace)
and the entries' dtypes; it never looks at weight values, so one structure serves
every network of an architecture (only the value vector changes).

Nodes. Every tensor axis is a *node space*: one node per index of the axis, the
axis being the row-major product of its factors. Axes with the same factors (the
same groups; for fixed factors, the same union-find roots in the trace) share one
space, so a hidden layer's units are one set of nodes for the weight producing
them, its bias, its norm and the weight consuming them, and a residual stream is
one set of nodes for every layer. A space whose axis mixes groups and fixed factors
((channel, h*w) after a flatten; (q|k|v, head, head_dim) of a fused projection) or
several groups ((head, head_dim)) gets `member` edges from each of its nodes to the
node of its group part, and a multi-group space to the node of each group, so heads
appear as nodes of their own. Each vector or scalar entry (bias, norm gain or
shift, BatchNorm running statistic) gets a single `param` node.

Edges. A weight with two or more unit axes gives one edge per (output unit, input
unit) pair, from the input unit to the output unit, carrying the slice over its
remaining fixed axes (a conv kernel: kh*kw values; width 1 for a linear). A vector
gives one edge per unit, from its param node, carrying one value; a scalar a
self-loop on its param node. Values live in one flat vector; edge `e` carries
`values[edge_off[e] : edge_off[e] + edge_width[e]]`, so kernels of every size are
stored unpadded and can be bucketed by width. Edges tile the value vector in edge
order, so `edge_off` is the exclusive cumulative sum of `edge_width`.

All edges of one entry share type, layer, width and kernel shape: besides the
per-edge tensors the structure holds them once per *edge class* (`class_*` tables)
and `edge_class` (E,) indexes them; the PyG export stores only that index per edge.
The tables of a batch of B networks (`batch_tables`) are derived once per batch size and
device and shared by every batch of that size.

Accounting: every element of every floating-point entry is carried by exactly one
edge, so `edge_width[not member].sum()` equals the number of floating-point
elements (parameters and buffers). Non-float entries (BatchNorm's
`num_batches_tracked`) are kept aside as extras and restored by the round trip.

Features, none of which tell interchangeable units apart: node type (input,
output, group kind, product, mixed, param), layer (execution rank of the first
entry writing into the space), position of the node among the fixed factors of its
axis (-1 when it has none); edge type (linear, conv, q/k/v/o/qkv, bias, norm
weight, ...), layer, width and the shape of its feature slice (the kernel size).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Mapping

import torch

from ..errors import KeyMismatchError
from ..parser.roles import Role
from ..spec import Factor, WeightSpec
from .vocab import EDGE_TYPE, NODE_TYPE, vector_type, weight_type

KERNEL_DIMS = 3
BATCH_CACHE = 4


@dataclass(frozen=True)
class NodeSpace:
    """A contiguous block of nodes: the units of one axis layout (or one param node)."""

    name: str
    factors: tuple[Factor, ...]
    start: int
    size: int
    type: str
    layer: int


@dataclass(frozen=True)
class EntryLayout:
    """Where one state-dict entry sits: `tensor.permute(order)` flattened is
    `values[value_start : value_start + numel]`, read as edges
    `edge_start .. edge_start + edge_count` of `width` values each."""

    key: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    order: tuple[int, ...]
    value_start: int
    numel: int
    edge_start: int
    edge_count: int
    width: int
    edge_type: str
    carried: bool


@dataclass(frozen=True, eq=False)
class GraphStructure:
    """Nodes, edges and entry layouts shared by every network of one spec (see module doc)."""

    spec: WeightSpec
    spaces: tuple[NodeSpace, ...]
    entries: tuple[EntryLayout, ...]
    num_nodes: int
    num_values: int
    value_dtype: torch.dtype
    node_type: torch.Tensor
    node_layer: torch.Tensor
    node_pos: torch.Tensor
    edge_index: torch.Tensor
    edge_type: torch.Tensor
    edge_layer: torch.Tensor
    edge_width: torch.Tensor
    edge_off: torch.Tensor
    edge_shape: torch.Tensor
    edge_class: torch.Tensor
    class_type: torch.Tensor
    class_layer: torch.Tensor
    class_width: torch.Tensor
    class_shape: torch.Tensor
    _batches: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    def entry(self, key: str) -> EntryLayout:
        for e in self.entries:
            if e.key == key:
                return e
        raise KeyMismatchError([key], [], where="GraphStructure.entry")

    def batch_tables(self, b: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """The tables of b graphs of this structure, graph after graph (read-only, cached).

        node_type, node_layer, node_pos, node_graph (b·N,); edge_index (2, b·E) and
        edge_class (b·E,) shifted by N and C per graph; class_* (b·C, ...); edge_width and
        edge_off (b·E,), offsets shifted by V; node_ptr, value_ptr (b + 1,). The last
        `BATCH_CACHE` (b, device) pairs are kept, so a training loop derives them once.
        """
        key = (int(b), torch.device(device))
        hit = self._batches.pop(key, None)
        if hit is None:
            hit = self._tile(*key)
            while len(self._batches) >= BATCH_CACHE:
                self._batches.pop(next(iter(self._batches)))
        self._batches[key] = hit
        return hit

    def _tile(self, b: int, device: torch.device) -> dict[str, torch.Tensor]:
        n, c, v = self.num_nodes, self.class_type.shape[0], self.num_values
        graphs = torch.arange(b, device=device)

        def tile(t: torch.Tensor, step: int = 0) -> torch.Tensor:
            t = t.to(device).expand(b, *t.shape)
            if step:
                t = t + (graphs * step).view(b, *([1] * (t.dim() - 1)))
            return t.reshape(b * t.shape[1], *t.shape[2:])

        tables = {name: tile(getattr(self, name)) for name in ("node_type", "node_layer", "node_pos", "class_type",
                                                               "class_layer", "class_width", "class_shape",
                                                               "edge_width")}
        return {
            **tables,
            "node_graph": graphs.repeat_interleave(n),
            "edge_index": (self.edge_index.to(device)[:, None, :] + (graphs * n)[None, :, None]).reshape(2, -1),
            "edge_class": tile(self.edge_class, c),
            "edge_off": tile(self.edge_off, v),
            "node_ptr": torch.arange(b + 1, device=device) * n,
            "value_ptr": torch.arange(b + 1, device=device) * v,
        }

    def __repr__(self) -> str:
        return f"GraphStructure({self.num_nodes} nodes, {self.num_edges} edges, {self.num_values} values)"


def unravel(n: int, sizes: tuple[int, ...]) -> torch.Tensor:
    """Row-major coordinates (n, len(sizes)) of 0..n-1."""
    if not sizes:
        return torch.zeros(n, 0, dtype=torch.long)
    return torch.stack(torch.unravel_index(torch.arange(n), sizes), dim=1)


def ravel(coords: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    """Inverse of `unravel`."""
    flat = torch.zeros(coords.shape[0], dtype=torch.long)
    for j, s in enumerate(sizes):
        flat = flat * s + coords[:, j]
    return flat


def _module(key: str) -> str:
    return key.rsplit(".", 1)[0] if "." in key else ""


class _Builder:
    def __init__(self, spec: WeightSpec, roles: Mapping[str, Role] | None, dtypes: Mapping[str, torch.dtype]):
        self.spec, self.roles, self.dtypes = spec, roles, dtypes
        self.keys: dict[tuple, int] = {}
        self.spaces: list[dict] = []
        self.edges: list[tuple[torch.Tensor, ...]] = []
        self.entries: list[EntryLayout] = []
        self.num_edges = self.num_values = 0
        modules = list(dict.fromkeys(_module(k) for k in spec.entries))
        self.order = {k: roles[k].order if roles and k in roles else modules.index(_module(k)) for k in spec.entries}
        floats = [dtypes[k] for k in spec.entries if dtypes[k].is_floating_point]
        self.value_dtype = floats[0] if floats else torch.get_default_dtype()
        for d in floats[1:]:
            self.value_dtype = torch.promote_types(self.value_dtype, d)

    # ------------------------------------------------------------------ spaces
    def space(self, key: tuple, factors: tuple[Factor, ...], name: str, layer: int | None = None) -> int:
        if key not in self.keys:
            self.keys[key] = len(self.spaces)
            self.spaces.append(dict(name=name, factors=factors, size=prod(f.size for f in factors), reads=0,
                                    writes=[], layer=layer))
        return self.keys[key]

    def axis_space(self, key: str, axes: list[int], side: str) -> int:
        entry = self.spec.entries[key]
        factors = tuple(f for i in axes for f in entry.axes[i] if f.size > 1)
        if not factors:  # a size-1 axis: one fixed unit, shared by the weight and bias of its module
            factors = (Factor(None, 1),)
            skey: tuple = ("f", _module(key), side, factors)
        elif all(f.group is not None for f in factors):
            skey = ("g", tuple(f.group for f in factors))
        elif self.roles and key in self.roles:
            skey = ("t", tuple(r for i in axes for r in self.roles[key].roots[i]), factors)
        else:
            skey = ("f", _module(key), side, factors)
        name = "×".join(f.group or str(f.size) for f in factors)
        return self.space(skey, factors, f"{name} ({key}[{','.join(map(str, axes))}])" if skey[0] != "g" else name)

    # ------------------------------------------------------------------ entries
    def add_entry(self, key: str) -> None:
        entry, dtype = self.spec.entries[key], self.dtypes[key]
        shape, rank, numel = entry.shape, len(entry.shape), prod(entry.shape)
        role = self.roles.get(key) if self.roles else None
        op, arg = (role.op, role.arg) if role else ("", "")
        if not dtype.is_floating_point or numel == 0:
            self.entries.append(EntryLayout(key, shape, dtype, tuple(range(rank)), self.num_values, numel,
                                            self.num_edges, 0, 0, "other", False))
            return
        nontrivial = [i for i, n in enumerate(shape) if n > 1]
        if rank == 0 or (rank >= 2 and not nontrivial):
            param = self.param_node(key)
            self.connect(key, param, param, [], list(range(rank)), "scalar")
            return
        if rank == 1 or (len(nontrivial) == 1 and nontrivial[0] >= 2):
            param = self.param_node(key)
            units = self.axis_space(key, nontrivial[:1] or [0], "out")
            axes = nontrivial[:1] or [0]
            self.connect(key, units, param, axes, [i for i in range(rank) if i not in axes], vector_type(key, op, arg))
            return
        in_axes, out_axes = self.weight_axes(key, role, nontrivial)
        features = [i for i in range(rank) if i not in in_axes and i not in out_axes]
        kind = weight_type(op, role.attention if role else None, rank)
        src = self.axis_space(key, in_axes, "in")
        dst = self.axis_space(key, out_axes, "out")
        self.connect(key, dst, src, out_axes + in_axes, features, kind)

    def param_node(self, key: str) -> int:
        param = self.space(("p", key), (), key)
        self.spaces[param]["layer"] = self.order[key] + 1
        return param

    def weight_axes(self, key: str, role: Role | None, nontrivial: list[int]) -> tuple[list[int], list[int]]:
        """Input-side and output-side axes of a weight; the rest must be fixed (kernel taps)."""
        entry = self.spec.entries[key]
        grouped = {i for i in nontrivial if any(f.group for f in entry.axes[i])}
        in_axes = [i for i in (role.in_axes if role else ()) if i in nontrivial]
        if len(nontrivial) == 1:
            if not in_axes:
                in_axes = [0] if role is not None and role.op == "embedding" else [1]
            return in_axes, [1 - in_axes[0]] if in_axes[0] in (0, 1) else [0]
        if not in_axes or len(in_axes) == len(nontrivial):
            table = nontrivial[0] not in grouped and any(i in grouped for i in nontrivial[1:])
            in_axes = [nontrivial[0] if table else nontrivial[1]]
        rest = [i for i in nontrivial if i not in in_axes]
        return in_axes, [i for i in rest if i in grouped] or rest[:1]

    def connect(self, key: str, dst: int, src: int, unit_axes: list[int], features: list[int], kind: str) -> None:
        """Edges src-unit -> dst-unit for every index of `unit_axes`, feature slice over `features`."""
        entry = self.spec.entries[key]
        shape = entry.shape
        width = prod(shape[i] for i in features)
        n_dst, n_src = self.spaces[dst]["size"], self.spaces[src]["size"]
        count = n_dst * n_src
        d = torch.arange(n_dst).repeat_interleave(n_src)
        s = torch.arange(n_src).repeat(n_dst)
        dims = [shape[i] for i in features if shape[i] > 1][-KERNEL_DIMS:]
        kshape = torch.tensor([1] * (KERNEL_DIMS - len(dims)) + dims, dtype=torch.long)
        self.edges.append((
            s, d, src, dst,
            torch.full((count,), EDGE_TYPE[kind]),
            torch.full((count,), self.order[key]),
            torch.full((count,), width),
            self.num_values + torch.arange(count) * width,
            kshape.expand(count, KERNEL_DIMS),
        ))
        self.spaces[src]["reads"] += 1
        self.spaces[dst]["writes"].append(self.order[key])
        numel = prod(shape)
        self.entries.append(EntryLayout(key, shape, self.dtypes[key], tuple(unit_axes + features), self.num_values,
                                        numel, self.num_edges, count, width, kind, True))
        self.num_values += numel
        self.num_edges += count

    # ------------------------------------------------------------------ members
    def add_members(self) -> None:
        """Factored spaces point to the spaces of their group part / single groups (worklist)."""
        i = 0
        while i < len(self.spaces):
            sp = self.spaces[i]
            factors = sp["factors"]
            groups = [j for j, f in enumerate(factors) if f.group is not None]
            if groups and len(groups) < len(factors):
                targets = [groups]
            elif len(groups) >= 2 and len({factors[j].group for j in groups}) == len(groups):
                targets = [[j] for j in groups]
            else:
                targets = []
            for part in targets:
                sub = tuple(factors[j] for j in part)
                t = self.space(("g", tuple(f.group for f in sub)), sub, "×".join(f.group for f in sub))
                coords = unravel(sp["size"], tuple(f.size for f in factors))
                d = ravel(coords[:, part], tuple(f.size for f in sub))
                self.member_edges.append((i, t, d))
            i += 1

    # ------------------------------------------------------------------ finish
    def finish(self) -> GraphStructure:
        self.member_edges: list[tuple[int, int, torch.Tensor]] = []
        self.add_members()
        starts, n = [], 0
        for sp in self.spaces:
            starts.append(n)
            n += sp["size"]
        layers = self._layers()
        spaces, ntype, nlayer, npos = [], [], [], []
        for sp, start, layer in zip(self.spaces, starts, layers):
            kind = self._node_type(sp)
            spaces.append(NodeSpace(sp["name"], sp["factors"], start, sp["size"], kind, layer))
            ntype.append(torch.full((sp["size"],), NODE_TYPE[kind]))
            nlayer.append(torch.full((sp["size"],), layer))
            fixed = [j for j, f in enumerate(sp["factors"]) if f.group is None]
            if fixed:
                coords = unravel(sp["size"], tuple(f.size for f in sp["factors"]))
                npos.append(ravel(coords[:, fixed], tuple(sp["factors"][j].size for j in fixed)))
            else:
                npos.append(torch.full((sp["size"],), -1))
        parts = [
            (s + starts[src], d + starts[dst], t, lay, w, off, ks) for s, d, src, dst, t, lay, w, off, ks in self.edges
        ]
        for src, dst, d in self.member_edges:
            m = d.shape[0]
            parts.append((
                torch.arange(m) + starts[src], d + starts[dst], torch.full((m,), EDGE_TYPE["member"]),
                torch.full((m,), layers[src]), torch.zeros(m, dtype=torch.long), torch.zeros(m, dtype=torch.long),
                torch.zeros(m, KERNEL_DIMS, dtype=torch.long),
            ))
        empty = torch.zeros(0, dtype=torch.long)
        cols = list(zip(*parts)) if parts else [[empty]] * 6 + [[empty.reshape(0, KERNEL_DIMS)]]
        cat = lambda xs: torch.cat(list(xs)).long()  # noqa: E731
        etype, elayer, ewidth, eshape = cat(cols[2]), cat(cols[3]), cat(cols[4]), cat(cols[6]).reshape(-1, KERNEL_DIMS)
        # every chunk of edges (one entry, or one member projection) has constant attributes
        chunks = [p for p in parts if p[2].numel()]
        rows = torch.stack([torch.cat([p[2][:1], p[3][:1], p[4][:1], p[6][0]]).long() for p in chunks]) if chunks \
            else torch.zeros(0, 3 + KERNEL_DIMS, dtype=torch.long)
        classes, inverse = torch.unique(rows, dim=0, return_inverse=True)
        edge_class = inverse.repeat_interleave(torch.tensor([p[2].numel() for p in chunks], dtype=torch.long)) \
            if chunks else empty
        offsets = torch.cumsum(ewidth, 0) - ewidth
        carrying = ewidth > 0
        if not torch.equal(offsets[carrying], cat(cols[5])[carrying]):
            raise AssertionError("edge values do not tile the value vector in edge order")
        return GraphStructure(
            spec=self.spec,
            spaces=tuple(spaces),
            entries=tuple(self.entries),
            num_nodes=n,
            num_values=self.num_values,
            value_dtype=self.value_dtype,
            node_type=torch.cat(ntype) if ntype else empty,
            node_layer=torch.cat(nlayer) if nlayer else empty,
            node_pos=torch.cat(npos) if npos else empty,
            edge_index=torch.stack([cat(cols[0]), cat(cols[1])]),
            edge_type=etype,
            edge_layer=elayer,
            edge_width=ewidth,
            edge_off=offsets,
            edge_shape=eshape,
            edge_class=edge_class.long(),
            class_type=classes[:, 0].contiguous(),
            class_layer=classes[:, 1].contiguous(),
            class_width=classes[:, 2].contiguous(),
            class_shape=classes[:, 3:].contiguous(),
        )

    def _layers(self) -> list[int]:
        layers: list[int] = []
        for sp in self.spaces:
            if sp["layer"] is not None:
                layers.append(sp["layer"])
            elif sp["writes"]:
                layers.append(min(sp["writes"]) + 1)
            else:
                layers.append(0)
        for src, dst, _ in self.member_edges:
            if not self.spaces[dst]["writes"] and self.spaces[dst]["layer"] is None:
                layers[dst] = max(layers[dst], layers[src])
            if not self.spaces[src]["writes"]:
                layers[src] = max(layers[src], layers[dst])
        return layers

    def _node_type(self, sp: dict) -> str:
        factors = sp["factors"]
        if not factors:
            return "param"
        groups = [f.group for f in factors if f.group is not None]
        if not groups:
            if sp["writes"] and sp["reads"]:
                return "fixed"
            return "output" if sp["writes"] else "input" if sp["reads"] else "fixed"
        if len(groups) < len(factors):
            return "mixed"
        if len(groups) > 1:
            return "product"
        return self.spec.groups[groups[0]].kind


def graph_structure(
    spec: WeightSpec, dtypes: Mapping[str, torch.dtype] | None = None, roles: Mapping[str, Role] | None = None
) -> GraphStructure:
    """The parameter-graph structure of `spec` (see the module doc).

    dtypes: per entry (default: float everywhere except BatchNorm `num_batches_tracked`);
    roles: `ParsedModel.roles`; without them the input side of a
    weight is its axis 1 (axis 0 for an embedding-like table whose first axis is fixed).
    """
    if dtypes is None:
        dtypes = {
            k: torch.long if k.endswith("num_batches_tracked") else torch.get_default_dtype() for k in spec.entries
        }
    builder = _Builder(spec, roles, dtypes)
    for key in spec.entries:
        builder.add_entry(key)
    return builder.finish()
