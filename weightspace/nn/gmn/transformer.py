"""Relational transformer on parameter graphs, sparse: a node attends over its graph
neighbourhood only (Kofinas et al., "Graph Neural Networks for Learning Equivariant
Representations of Neural Networks", ICLR 2024, whose reference implementation
attends densely over all N×N node pairs; here the cost is linear in the edges).

Every edge i -> j is read in both directions: node j attends to i through it
("forward") and node i to j ("backward"), each with its own edge projections.
Queries, keys and values are edge-conditioned:

    q_rs = W_q h_r + W_qe^d e,  k_rs = W_k h_s + W_ke^d e,  v_rs = W_v h_s + W_ve^d e
    a_rs = softmax over the neighbours s of r of <q_rs, k_rs> / sqrt(d_head)   (per head)
    h_r <- h_r + W_o Σ_s a_rs v_rs;  h <- h + FFN(h);  e_ij <- e_ij + φ_e([h_i, h_j, e_ij])

for receiver r, sender s and direction d. The softmax and the sum are scatter ops
over edges, so nothing is N×N; edges stream in chunks (`weightspace.nn.gmn.stream`)
with an online softmax (per chunk the receivers' maxima, exp-sums and weighted values,
merged by rescaling to the running maximum), recomputed in backward.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import GMNError
from . import native
from .mlp import mlp
from .stream import check_chunk_size, edge_chunks, expand_index, node_terms, pair_mlp, run_chunks, scatter_sum


class RelationalTransformerLayer(nn.Module):
    """One sparse relational-transformer layer (module docstring).

    Args:
        hidden: node and edge feature size; heads: attention heads (divides hidden).
        ffn: hidden size of the feed-forward blocks (default 2 * hidden).
        dropout: on the attention weights and inside the MLPs.
        chunk_size: edges per chunk (None: from `stream.MEMORY_BUDGET`); `forward` may override it.

    On CPU the attention and the edge update run fused (`weightspace.nn.gmn.native`, where it
    applies; `native = False` switches it off), else in chunks.

    Shapes: h (N, hidden), e (E, hidden), edge_index (2, E) -> (h', e') of the same shapes.
    """

    def __init__(self, hidden: int, heads: int = 4, ffn: int | None = None, dropout: float = 0.0,
                 chunk_size: int | None = None):
        super().__init__()
        if heads < 1 or hidden % heads:
            raise GMNError(f"hidden={hidden} must be a positive multiple of heads={heads}")
        ffn = ffn or 2 * hidden
        self.hidden, self.heads = hidden, heads
        self.chunk_size = check_chunk_size(chunk_size)
        self.norm_h = nn.LayerNorm(hidden)
        self.norm_e = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.edge_qkv = nn.ModuleList([nn.Linear(hidden, 3 * hidden, bias=False) for _ in range(2)])
        self.out = nn.Linear(hidden, hidden)
        self.norm_ffn = nn.LayerNorm(hidden)
        self.ffn = mlp([hidden, ffn, hidden], dropout=dropout)
        self.norm_edge = nn.LayerNorm(hidden)
        self.edge = mlp([3 * hidden, ffn, hidden], dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.native = True

    def _chunks(self, e: torch.Tensor, chunk_size: int | None) -> list[slice]:
        return edge_chunks(e.shape[0], check_chunk_size(chunk_size) or self.chunk_size, self.hidden, e.dtype)

    def _attend_chunk(self, c: slice, e, src, dst, q, k, v):
        """One chunk (e: its rows), both directions: per receiver and head the score maximum m (no grad),
        Σ exp(score - m) and Σ exp(score - m) v."""
        n, heads, dh = q.shape[0], self.heads, self.hidden // self.heads
        weight = torch.cat([self.edge_qkv[0].weight, self.edge_qkv[1].weight])
        fq, fk, fv, bq, bk, bv = F.linear(self.norm_e(e), weight).chunk(6, dim=1)
        receiver, sender = torch.cat([dst[c], src[c]]), torch.cat([src[c], dst[c]])
        qs = (q.index_select(0, receiver) + torch.cat([fq, bq])).view(-1, heads, dh)
        ks = (k.index_select(0, sender) + torch.cat([fk, bk])).view(-1, heads, dh)
        vs = (v.index_select(0, sender) + torch.cat([fv, bv])).view(-1, heads, dh)
        score = (qs * ks).sum(-1) / math.sqrt(dh)
        with torch.no_grad():
            m = score.new_full((n, heads), torch.finfo(score.dtype).min)
            m.scatter_reduce_(0, expand_index(receiver, score), score, "amax", include_self=True)
        w = torch.exp(score - m.index_select(0, receiver))
        return m, scatter_sum(w, receiver, n), scatter_sum(self.dropout(w)[..., None] * vs, receiver, n)

    def attend(self, h: torch.Tensor, e: torch.Tensor, edge_index: torch.Tensor,
               chunk_size: int | None = None) -> torch.Tensor:
        """The attention update Σ_s a_rs v_rs (before W_o), (N, hidden)."""
        src, dst = edge_index
        q, k, v = self.qkv(self.norm_h(h)).chunk(3, dim=1)
        if native.supported(self, e) and not (self.dropout.p and self.training):
            return native.attention(self.norm_e, self.edge_qkv, self.heads, e, src, dst, q, k, v)
        parts = list(run_chunks(self._attend_chunk, self._chunks(e, chunk_size), (e,), src, dst, q, k, v))
        m, z, u = parts[0]
        for m2, z2, u2 in parts[1:]:
            top = torch.maximum(m, m2)
            a, b = torch.exp(m - top), torch.exp(m2 - top)
            z, u, m = z * a + z2 * b, u * a[..., None] + u2 * b[..., None], top
        return (u / (z + 1e-16)[..., None]).reshape(h.shape[0], self.hidden)

    def _edge_chunk(self, c: slice, e, src, dst, p_src, p_dst):
        return e + pair_mlp(self.edge, self.norm_e(e), src[c], dst[c], p_src, p_dst)

    def forward(self, h: torch.Tensor, e: torch.Tensor, edge_index: torch.Tensor,
                chunk_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        src, dst = edge_index
        h = h + self.out(self.attend(h, e, edge_index, chunk_size))
        h = h + self.ffn(self.norm_ffn(h))
        terms = node_terms(self.edge[0], self.norm_edge(h), 2)
        if native.supported(self, e, (self.edge,)):
            return h, native.pair_update(self.norm_e, self.edge, e, src, dst, *terms, residual=True)
        parts = list(run_chunks(self._edge_chunk, self._chunks(e, chunk_size), (e,), src, dst, *terms))
        return h, torch.cat(parts) if len(parts) > 1 else parts[0]

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, heads={self.heads}, chunk_size={self.chunk_size}"
