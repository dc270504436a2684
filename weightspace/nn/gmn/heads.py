"""Heads of the graph metanetworks: an invariant readout per graph, and equivariant
per-edge / per-node outputs.

Per-edge outputs are written where the input edge's values sit (an edge carrying a
3x3 kernel predicts 9 values), so they form a value vector of the same layout as
the graph's and map back to a state dict through the graph's exact round trip
(`values_to_state_dicts`, `unflatten_values`). Per-node outputs map to one tensor
per node space (`node_space_outputs`), described by `node_space_spec` so that the
spec's own group action checks them.
"""
from __future__ import annotations

from functools import reduce
from math import prod
from typing import Iterable, Sequence

import torch
from torch import nn

from ...graph.structure import GraphStructure
from ...spec import Entry, Factor, Group, WeightSpec
from ...errors import GMNError
from .inputs import GraphInputs
from . import native
from .mlp import mlp
from .stream import check_chunk_size, edge_chunks, finish_max, merge_partials, node_terms, pair_mlp, run_chunks, \
    scatter_sum, segment_max

POOLS = ("mean", "max", "sum")


def _partial_pools(x: torch.Tensor, index: torch.Tensor, n: int, pools: Sequence[str]) -> dict[str, torch.Tensor]:
    out = {}
    if {"mean", "sum"} & set(pools):
        out["sum"] = scatter_sum(x, index, n)
    if "max" in pools:
        out["max"] = segment_max(x, index, n)
    return out


def _finish_pools(parts: dict[str, torch.Tensor], count: torch.Tensor, pools: Sequence[str]) -> list[torch.Tensor]:
    out = []
    for p in pools:
        if p == "mean":
            out.append(parts["sum"] / count.clamp(min=1).to(parts["sum"].dtype)[:, None])
        elif p == "sum":
            out.append(parts["sum"])
        else:
            out.append(finish_max(parts["max"]))
    return out


class InvariantReadout(nn.Module):
    """Graph-level readout: pooled node and edge features per graph, then an MLP.

    Pooling runs over all nodes (all edges) of a graph, so any node relabeling leaves it
    unchanged. Args: hidden (input features), out (outputs per graph), pools (any of
    "mean", "max", "sum"), edges (also pool edge features), extra (width of further
    invariant per-graph features concatenated before the MLP, e.g. probe readings),
    chunk_size (edges per chunk of the edge pooling, `weightspace.nn.gmn.stream`; None: auto). On CPU
    the edge pooling runs fused (`weightspace.nn.gmn.native`, where it applies and `native` is on).

    Shapes: h (N, hidden), e (E, hidden)[, extra (G, extra)] -> (G, out).
    """

    def __init__(self, hidden: int, out: int, pools: Sequence[str] = ("mean", "max"), edges: bool = True,
                 extra: int = 0, chunk_size: int | None = None):
        super().__init__()
        if not pools or any(p not in POOLS for p in pools):
            raise GMNError(f"pools {tuple(pools)} must be a non-empty subset of {POOLS}")
        self.pools, self.edges, self.out_features, self.extra = tuple(pools), edges, out, extra
        self.chunk_size = check_chunk_size(chunk_size)
        width = hidden * len(self.pools) * (2 if edges else 1) + extra
        self.norm_h = nn.LayerNorm(hidden)
        self.norm_e = nn.LayerNorm(hidden)
        self.mlp = mlp([width, max(2 * hidden, min(extra, 256)), out])
        self.native = True

    def _edge_chunk(self, c: slice, e, edge_graph, n):
        return _partial_pools(self.norm_e(e), edge_graph[c], n, self.pools)

    def forward(self, h: torch.Tensor, e: torch.Tensor, g: GraphInputs, extra: torch.Tensor | None = None) -> torch.Tensor:
        n = g.num_graphs
        nodes = _partial_pools(self.norm_h(h), g.node_graph, n, self.pools)
        parts = _finish_pools(nodes, torch.bincount(g.node_graph, minlength=n), self.pools)
        if self.edges:
            edge_graph = g.edge_graph
            if native.supported(self, e):
                pooled = native.pool(self.norm_e, e, edge_graph, n)
            else:
                chunks = edge_chunks(e.shape[0], self.chunk_size, e.shape[1], e.dtype)
                pooled = reduce(merge_partials, run_chunks(self._edge_chunk, chunks, (e,), edge_graph, n))
            parts += _finish_pools(pooled, torch.bincount(edge_graph, minlength=n), self.pools)
        if (extra is None) != (self.extra == 0) or (extra is not None and extra.shape != (n, self.extra)):
            got = None if extra is None else tuple(extra.shape)
            raise GMNError(f"the readout expects extra features of shape ({n}, {self.extra}), got {got}")
        if extra is not None:
            parts.append(extra)
        return self.mlp(torch.cat(parts, dim=1))

    def extra_repr(self) -> str:
        return f"out={self.out_features}, pools={self.pools}, edges={self.edges}, extra={self.extra}"


class EdgeHead(nn.Module):
    """Per-edge equivariant output: one value per value the edge carries.

    An MLP of [h_src, h_dst, e] per edge (fused on CPU, `weightspace.nn.gmn.native`, where it
    applies and `native` is on; else in chunks, `weightspace.nn.gmn.stream`), then a
    linear map per width to that many values, written into a flat vector laid out like
    the batch's `edge_val`.

    Shapes: h (N, hidden), e (E, hidden) -> (V,).
    """

    def __init__(self, hidden: int, widths: Iterable[int] = (1, 9), chunk_size: int | None = None):
        super().__init__()
        self.widths = tuple(sorted({int(w) for w in widths if int(w) > 0}))
        self.chunk_size = check_chunk_size(chunk_size)
        self.norm_h = nn.LayerNorm(hidden)
        self.norm_e = nn.LayerNorm(hidden)
        self.mlp = mlp([3 * hidden, hidden, hidden])
        self.project = nn.ModuleDict({str(w): nn.Linear(hidden, w) for w in self.widths})
        self.native = True

    def _chunk(self, c: slice, e, src, dst, p_src, p_dst):
        return pair_mlp(self.mlp, self.norm_e(e), src[c], dst[c], p_src, p_dst)

    def forward(self, h: torch.Tensor, e: torch.Tensor, g: GraphInputs) -> torch.Tensor:
        src, dst = g.edge_index
        terms = node_terms(self.mlp[0], self.norm_h(h), 2)
        if native.supported(self, e, (self.mlp,)):
            z = native.pair_update(self.norm_e, self.mlp, e, src, dst, *terms, residual=False)
        else:
            chunks = edge_chunks(e.shape[0], self.chunk_size, e.shape[1], e.dtype)
            z = torch.cat(list(run_chunks(self._chunk, chunks, (e,), src, dst, *terms)))
        out = z.new_zeros(g.edge_val.shape[0])
        for w, ids, where in g.width_slices():
            if w not in self.widths:
                raise GMNError(f"the batch has edges of width {w}; this head writes widths {self.widths}")
            out = out.index_put((where.flatten(),), self.project[str(w)](z[ids]).flatten())
        return out

    def extra_repr(self) -> str:
        return f"widths={self.widths}"


class NodeHead(nn.Module):
    """Per-node equivariant output. Shapes: h (N, hidden) -> (N, out)."""

    def __init__(self, hidden: int, out: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.mlp = mlp([hidden, hidden, out])
        self.out_features = out

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.norm(h))


def unflatten_values(structure: GraphStructure, values: torch.Tensor) -> dict[str, torch.Tensor]:
    """The (batched) state dict a value vector (*batch, V) carries: key -> (*batch, *shape).

    The inverse of `weightspace.graph.build.flatten_values` for every floating-point entry;
    non-float extras (BatchNorm's `num_batches_tracked`) and aliases are not values and
    are left out. Differentiable; the output dtype is the values' dtype.
    """
    if values.shape[-1] != structure.num_values:
        raise GMNError(f"values of shape {tuple(values.shape)}; the structure carries {structure.num_values}")
    lead = values.shape[:-1]
    nb = len(lead)
    out: dict[str, torch.Tensor] = {}
    for e in structure.entries:
        if not e.carried:
            continue
        permuted = tuple(e.shape[i] for i in e.order)
        inverse = tuple(range(nb)) + tuple(nb + i for i in sorted(range(len(e.order)), key=lambda i: e.order[i]))
        flat = values[..., e.value_start : e.value_start + e.numel]
        out[e.key] = flat.reshape(*lead, *permuted).permute(inverse)
    return out


def values_to_state_dicts(g: GraphInputs, values: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Split a batch's value vector (V,) per graph and map each to its state dict."""
    ptr = g.value_ptr.tolist()
    return [unflatten_values(s, values[a:b]) for s, a, b in zip(g.structures, ptr[:-1], ptr[1:])]


def stacked_state_dict(g: GraphInputs, values: torch.Tensor) -> dict[str, torch.Tensor]:
    """A homogeneous batch's value vector (V,) as stacked tensors key -> (G, *shape)."""
    if not g.homogeneous():
        raise GMNError("stacked_state_dict needs one architecture in the batch; use values_to_state_dicts")
    return unflatten_values(g.structures[0], values.reshape(g.num_graphs, -1))


def _space_keys(structure: GraphStructure) -> list[str]:
    seen: dict[str, int] = {}
    keys = []
    for sp in structure.spaces:
        n = seen.get(sp.name, 0)
        seen[sp.name] = n + 1
        keys.append(sp.name if n == 0 else f"{sp.name}#{n}")
    return keys


def node_space_outputs(structure: GraphStructure, node_out: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-node outputs (*batch, N, k) of one structure as one tensor per node space, (*batch, size, k)."""
    if node_out.shape[-2] != structure.num_nodes:
        raise GMNError(f"node outputs of shape {tuple(node_out.shape)}; the structure has {structure.num_nodes} nodes")
    return {
        key: node_out[..., sp.start : sp.start + sp.size, :]
        for key, sp in zip(_space_keys(structure), structure.spaces)
    }


def node_space_spec(structure: GraphStructure, k: int) -> WeightSpec:
    """The spec of `node_space_outputs` (k features per node): each space's axis keeps its factors."""
    entries, used = {}, set()
    for key, sp in zip(_space_keys(structure), structure.spaces):
        factors = sp.factors or (Factor(None, 1),)
        entries[key] = Entry(key, (prod(f.size for f in factors), k), (factors, (Factor(None, k),)))
        used |= {f.group for f in factors if f.group is not None}
    groups = {n: Group(n, grp.size, grp.kind) for n, grp in structure.spec.groups.items() if n in used}
    return WeightSpec(entries, groups)
