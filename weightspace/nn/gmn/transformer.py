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
over edges (`torch_geometric.utils.softmax` / `scatter`), so nothing is N×N.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch_geometric.utils import scatter, softmax

from ...errors import GMNError
from .mlp import mlp


class RelationalTransformerLayer(nn.Module):
    """One sparse relational-transformer layer (module docstring).

    Args:
        hidden: node and edge feature size; heads: attention heads (divides hidden).
        ffn: hidden size of the feed-forward blocks (default 2 * hidden).
        dropout: on the attention weights and inside the MLPs.

    Shapes: h (N, hidden), e (E, hidden), edge_index (2, E) -> (h', e') of the same shapes.
    """

    def __init__(self, hidden: int, heads: int = 4, ffn: int | None = None, dropout: float = 0.0):
        super().__init__()
        if heads < 1 or hidden % heads:
            raise GMNError(f"hidden={hidden} must be a positive multiple of heads={heads}")
        ffn = ffn or 2 * hidden
        self.hidden, self.heads = hidden, heads
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

    def attend(self, h: torch.Tensor, e: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """The attention update Σ_s a_rs v_rs (before W_o), (N, hidden)."""
        src, dst = edge_index
        n, heads, dh = h.shape[0], self.heads, self.hidden // self.heads
        q, k, v = self.qkv(self.norm_h(h)).chunk(3, dim=1)
        en = self.norm_e(e)
        fq, fk, fv = self.edge_qkv[0](en).chunk(3, dim=1)
        bq, bk, bv = self.edge_qkv[1](en).chunk(3, dim=1)
        receiver = torch.cat([dst, src])
        sender = torch.cat([src, dst])
        qs = (q[receiver] + torch.cat([fq, bq])).view(-1, heads, dh)
        ks = (k[sender] + torch.cat([fk, bk])).view(-1, heads, dh)
        vs = (v[sender] + torch.cat([fv, bv])).view(-1, heads, dh)
        score = (qs * ks).sum(-1) / math.sqrt(dh)
        alpha = self.dropout(softmax(score, receiver, num_nodes=n))
        return scatter(alpha[..., None] * vs, receiver, 0, dim_size=n, reduce="sum").reshape(n, self.hidden)

    def forward(self, h: torch.Tensor, e: torch.Tensor, edge_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        src, dst = edge_index
        h = h + self.out(self.attend(h, e, edge_index))
        h = h + self.ffn(self.norm_ffn(h))
        hn = self.norm_edge(h)
        e = e + self.edge(torch.cat([hn[src], hn[dst], self.norm_e(e)], dim=1))
        return h, e

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, heads={self.heads}"
