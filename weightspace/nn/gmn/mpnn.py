"""Edge-updating message passing on parameter graphs (Lim et al., "Graph Metanetworks
for Processing Diverse Neural Architectures", ICLR 2024; Kofinas et al., "Graph
Neural Networks for Learning Equivariant Representations of Neural Networks", ICLR 2024).

One layer, with pre-norm residual updates (LayerNorm acts per node and per edge, so
graphs of a batch never see each other):

    e_ij <- e_ij + φ_e([h_i, h_j, e_ij])                       for every edge i -> j
    h_j  <- h_j + φ_h([h_j, ⊕_{i -> j} φ_in([h_i, e_ij]), ⊕_{j -> k} φ_out([h_k, e_jk])])

⊕ concatenates the aggregators (mean, max, std) over a node's incoming edges and,
separately, its outgoing edges: the parameter graph is a DAG from inputs to
outputs, and information has to flow both ways. Messages, aggregation and updates
commute with any node relabeling, so the layer is equivariant to the network's
permutation symmetries.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch_geometric.utils import scatter

from ...errors import GMNError
from .mlp import mlp

AGGREGATORS = ("mean", "max", "std", "sum")


def aggregate(msg: torch.Tensor, index: torch.Tensor, num_nodes: int, aggregators: Sequence[str]) -> torch.Tensor:
    """Concatenated aggregations of messages (M, d) at their target nodes: (num_nodes, d * len(aggregators)).

    Nodes without messages get zeros from every aggregator.
    """
    out = []
    mean = None
    for name in aggregators:
        if name in ("mean", "std") and mean is None:
            mean = scatter(msg, index, 0, dim_size=num_nodes, reduce="mean")
        if name == "mean":
            out.append(mean)
        elif name == "max":
            out.append(scatter(msg, index, 0, dim_size=num_nodes, reduce="max"))
        elif name == "sum":
            out.append(scatter(msg, index, 0, dim_size=num_nodes, reduce="sum"))
        elif name == "std":
            var = scatter(msg * msg, index, 0, dim_size=num_nodes, reduce="mean") - mean * mean
            out.append(torch.sqrt(var.clamp(min=0) + 1e-6) - 1e-3)
    return torch.cat(out, dim=1)


class EdgeMPNNLayer(nn.Module):
    """One edge-updating message-passing layer (module docstring).

    Args:
        hidden: node and edge feature size.
        aggregators: any of "mean", "max", "std", "sum".
        dropout: inside the update MLPs.

    Shapes: h (N, hidden), e (E, hidden), edge_index (2, E) -> (h', e') of the same shapes.
    """

    def __init__(self, hidden: int, aggregators: Sequence[str] = ("mean", "max", "std"), dropout: float = 0.0):
        super().__init__()
        unknown = [a for a in aggregators if a not in AGGREGATORS]
        if unknown or not aggregators:
            raise GMNError(f"unknown aggregators {unknown}; choose from {AGGREGATORS}")
        self.hidden, self.aggregators = hidden, tuple(aggregators)
        self.norm_h = nn.LayerNorm(hidden)
        self.norm_e = nn.LayerNorm(hidden)
        self.norm_m = nn.LayerNorm(hidden)
        self.edge = mlp([3 * hidden, hidden, hidden], dropout=dropout)
        self.msg_in = mlp([2 * hidden, hidden, hidden], dropout=dropout)
        self.msg_out = mlp([2 * hidden, hidden, hidden], dropout=dropout)
        self.norm_agg = nn.LayerNorm(2 * len(self.aggregators) * hidden)
        self.node = mlp([hidden + 2 * len(self.aggregators) * hidden, hidden, hidden], dropout=dropout)

    def forward(self, h: torch.Tensor, e: torch.Tensor, edge_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        src, dst = edge_index
        n = h.shape[0]
        hn = self.norm_h(h)
        e = e + self.edge(torch.cat([hn[src], hn[dst], self.norm_e(e)], dim=1))
        en = self.norm_m(e)
        incoming = aggregate(self.msg_in(torch.cat([hn[src], en], dim=1)), dst, n, self.aggregators)
        outgoing = aggregate(self.msg_out(torch.cat([hn[dst], en], dim=1)), src, n, self.aggregators)
        h = h + self.node(torch.cat([hn, self.norm_agg(torch.cat([incoming, outgoing], dim=1))], dim=1))
        return h, e

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, aggregators={self.aggregators}"
