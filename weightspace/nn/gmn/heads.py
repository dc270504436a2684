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

from math import prod
from typing import Iterable, Sequence

import torch
from torch import nn
from torch_geometric.utils import scatter

from ...graph.structure import GraphStructure
from ...spec import Entry, Factor, Group, WeightSpec
from ...errors import GMNError
from .inputs import GraphInputs
from .mlp import mlp

POOLS = ("mean", "max", "sum")


class InvariantReadout(nn.Module):
    """Graph-level readout: pooled node and edge features per graph, then an MLP.

    Pooling runs over all nodes (all edges) of a graph, so any node relabeling leaves it
    unchanged. Args: hidden (input features), out (outputs per graph), pools (any of
    "mean", "max", "sum"), edges (also pool edge features), extra (width of further
    invariant per-graph features concatenated before the MLP, e.g. probe readings).

    Shapes: h (N, hidden), e (E, hidden)[, extra (G, extra)] -> (G, out).
    """

    def __init__(self, hidden: int, out: int, pools: Sequence[str] = ("mean", "max"), edges: bool = True,
                 extra: int = 0):
        super().__init__()
        if not pools or any(p not in POOLS for p in pools):
            raise GMNError(f"pools {tuple(pools)} must be a non-empty subset of {POOLS}")
        self.pools, self.edges, self.out_features, self.extra = tuple(pools), edges, out, extra
        width = hidden * len(self.pools) * (2 if edges else 1) + extra
        self.norm_h = nn.LayerNorm(hidden)
        self.norm_e = nn.LayerNorm(hidden)
        self.mlp = mlp([width, max(2 * hidden, min(extra, 256)), out])

    def forward(self, h: torch.Tensor, e: torch.Tensor, g: GraphInputs, extra: torch.Tensor | None = None) -> torch.Tensor:
        n = g.num_graphs
        parts = [scatter(self.norm_h(h), g.node_graph, 0, dim_size=n, reduce=p) for p in self.pools]
        if self.edges:
            parts += [scatter(self.norm_e(e), g.edge_graph, 0, dim_size=n, reduce=p) for p in self.pools]
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

    An MLP of [h_src, h_dst, e] per edge, then a linear map per width to that many
    values, written into a flat vector laid out like the batch's `edge_val`.

    Shapes: h (N, hidden), e (E, hidden) -> (V,).
    """

    def __init__(self, hidden: int, widths: Iterable[int] = (1, 9)):
        super().__init__()
        self.widths = tuple(sorted({int(w) for w in widths if int(w) > 0}))
        self.norm_h = nn.LayerNorm(hidden)
        self.norm_e = nn.LayerNorm(hidden)
        self.mlp = mlp([3 * hidden, hidden, hidden])
        self.project = nn.ModuleDict({str(w): nn.Linear(hidden, w) for w in self.widths})

    def forward(self, h: torch.Tensor, e: torch.Tensor, g: GraphInputs) -> torch.Tensor:
        src, dst = g.edge_index
        hn = self.norm_h(h)
        z = self.mlp(torch.cat([hn[src], hn[dst], self.norm_e(e)], dim=1))
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
