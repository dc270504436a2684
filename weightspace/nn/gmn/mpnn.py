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

from functools import reduce
from typing import Sequence

import torch
from torch import nn

from ...errors import GMNError
from . import native
from .mlp import mlp
from .stream import check_chunk_size, edge_chunks, edge_term, finish_max, merge_partials, node_terms, pair_mlp, \
    run_chunks, scatter_sum, segment_max

AGGREGATORS = ("mean", "max", "std", "sum")


def partial_aggregates(msg: torch.Tensor, index: torch.Tensor, num_nodes: int,
                       aggregators: Sequence[str]) -> dict[str, torch.Tensor]:
    """What `aggregators` need of messages (M, d) at their target nodes, mergeable over chunks
    of messages (`stream.merge_partials`): sums, sums of squares, maxima, each (num_nodes, d)."""
    out = {}
    if {"mean", "std", "sum"} & set(aggregators):
        out["sum"] = scatter_sum(msg, index, num_nodes)
    if "std" in aggregators:
        out["sq"] = scatter_sum(msg * msg, index, num_nodes)
    if "max" in aggregators:
        out["max"] = segment_max(msg, index, num_nodes)
    return out


def finish_aggregates(parts: dict[str, torch.Tensor], count: torch.Tensor, aggregators: Sequence[str]) -> torch.Tensor:
    """Concatenated aggregations (num_nodes, d * len(aggregators)) from partial aggregates and
    the number of messages per node (num_nodes,). Nodes without messages get zeros."""
    out = []
    denom = count.clamp(min=1).to(next(iter(parts.values())).dtype)[:, None]
    for name in aggregators:
        if name == "mean":
            out.append(parts["sum"] / denom)
        elif name == "max":
            out.append(finish_max(parts["max"]))
        elif name == "sum":
            out.append(parts["sum"])
        elif name == "std":
            mean = parts["sum"] / denom
            var = parts["sq"] / denom - mean * mean
            out.append(torch.sqrt(var.clamp(min=0) + 1e-6) - 1e-3)
    return torch.cat(out, dim=1)


def aggregate(msg: torch.Tensor, index: torch.Tensor, num_nodes: int, aggregators: Sequence[str]) -> torch.Tensor:
    """Concatenated aggregations of messages (M, d) at their target nodes: (num_nodes, d * len(aggregators)).

    Nodes without messages get zeros from every aggregator.
    """
    count = torch.bincount(index, minlength=num_nodes)
    return finish_aggregates(partial_aggregates(msg, index, num_nodes, aggregators), count, aggregators)


class EdgeMPNNLayer(nn.Module):
    """One edge-updating message-passing layer (module docstring).

    On CPU the edge update and both messages with their partial aggregates run fused
    (`weightspace.nn.gmn.native`, where it applies; `native = False` switches it off).
    Otherwise edges are processed in chunks (`weightspace.nn.gmn.stream`): per chunk the
    edge update, both messages and their partial aggregates, recomputed in backward. Either
    way memory beyond the layer's inputs and outputs is bounded (by one block or one chunk).

    Args:
        hidden: node and edge feature size.
        aggregators: any of "mean", "max", "std", "sum".
        dropout: inside the update MLPs.
        chunk_size: edges per chunk (None: from `stream.MEMORY_BUDGET`); `forward` may override it.

    Shapes: h (N, hidden), e (E, hidden), edge_index (2, E) -> (h', e') of the same shapes.
    """

    def __init__(self, hidden: int, aggregators: Sequence[str] = ("mean", "max", "std"), dropout: float = 0.0,
                 chunk_size: int | None = None):
        super().__init__()
        unknown = [a for a in aggregators if a not in AGGREGATORS]
        if unknown or not aggregators:
            raise GMNError(f"unknown aggregators {unknown}; choose from {AGGREGATORS}")
        self.hidden, self.aggregators = hidden, tuple(aggregators)
        self.chunk_size = check_chunk_size(chunk_size)
        self.norm_h = nn.LayerNorm(hidden)
        self.norm_e = nn.LayerNorm(hidden)
        self.norm_m = nn.LayerNorm(hidden)
        self.edge = mlp([3 * hidden, hidden, hidden], dropout=dropout)
        self.msg_in = mlp([2 * hidden, hidden, hidden], dropout=dropout)
        self.msg_out = mlp([2 * hidden, hidden, hidden], dropout=dropout)
        self.norm_agg = nn.LayerNorm(2 * len(self.aggregators) * hidden)
        self.node = mlp([hidden + 2 * len(self.aggregators) * hidden, hidden, hidden], dropout=dropout)
        self.native = True

    def _chunk(self, c: slice, e, src, dst, p_src, p_dst, p_in, p_out):
        """One chunk of edges (e: its rows): updated edges and the partial aggregates of both message directions."""
        n, src, dst = p_src.shape[0], src[c], dst[c]
        e = e + pair_mlp(self.edge, self.norm_e(e), src, dst, p_src, p_dst)
        en = self.norm_m(e)
        m_in = self.msg_in[1:](p_in.index_select(0, src) + edge_term(self.msg_in[0], en, 1))
        m_out = self.msg_out[1:](p_out.index_select(0, dst) + edge_term(self.msg_out[0], en, 1))
        return e, partial_aggregates(m_in, dst, n, self.aggregators), partial_aggregates(m_out, src, n, self.aggregators)

    def forward(self, h: torch.Tensor, e: torch.Tensor, edge_index: torch.Tensor,
                chunk_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        src, dst = edge_index
        n = h.shape[0]
        hn = self.norm_h(h)
        terms = (*node_terms(self.edge[0], hn, 2), *node_terms(self.msg_in[0], hn, 1), *node_terms(self.msg_out[0], hn, 1))
        if native.supported(self, e, (self.edge, self.msg_in, self.msg_out)):
            e = native.pair_update(self.norm_e, self.edge, e, src, dst, *terms[:2], residual=True)
            into, out_of = native.messages(self.norm_m, self.msg_in, self.msg_out, e, src, dst, *terms[2:])
        else:
            chunks = edge_chunks(e.shape[0], check_chunk_size(chunk_size) or self.chunk_size, self.hidden, e.dtype)
            parts = list(run_chunks(self._chunk, chunks, (e,), src, dst, *terms))
            e = torch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
            into, out_of = reduce(merge_partials, [p[1] for p in parts]), reduce(merge_partials, [p[2] for p in parts])
        counts = (torch.bincount(dst, minlength=n), torch.bincount(src, minlength=n))
        return self.update_nodes(h, hn, into, out_of, counts), e

    def update_nodes(self, h: torch.Tensor, hn: torch.Tensor, into: dict[str, torch.Tensor],
                     out_of: dict[str, torch.Tensor], counts: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The node update from the partial aggregates of the messages into and out of each node
        (`partial_aggregates`; hn = norm_h(h); counts: edges into and out of each node, (N,) each):
        h + φ_h([hn, incoming, outgoing])."""
        incoming = finish_aggregates(into, counts[0], self.aggregators)
        outgoing = finish_aggregates(out_of, counts[1], self.aggregators)
        return h + self.node(torch.cat([hn, self.norm_agg(torch.cat([incoming, outgoing], dim=1))], dim=1))

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, aggregators={self.aggregators}, chunk_size={self.chunk_size}"
