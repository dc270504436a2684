"""Sign- and scale-equivariant message passing (Kalogeropoulos et al., "Scale Equivariant
Graph Metanetworks", NeurIPS 2024).

Every node i carries a multiplier q_i (`charges.Charges`: a sign, a positive scale, or
1), node features move as x_i -> q_i x_i and edge features as e -> (q_head / q_tail) e,
like the weights they start from. The layer only combines features in ways that
keep those charges (t = tail, h = head of an edge t -> h):

- carriers, quantities with a known charge: x_h and A = e ⊙ x_t (charge q_h), x_t (q_t),
  and where no endpoint has a scale also e ⊙ x_h (q_t for signs) and x_t ⊙ x_h (e's);
- invariants ρ: for a vector v of one charge, φ(u) + φ(σ u) with u = v / |v| where the
  charge is a scale (canonicalization of the scale: exact, cheap, and the only
  continuous choice up to a positive factor) and σ = -1 where it is a sign (an even
  symmetrization, ScaleGMN's sign-invariant net), else u = v, σ = 1;
- updates (carrier) ⊙ (1 + MLP(invariants)), plus an unconstrained term where the target is
  uncharged: ScaleGMN's "rescale-equivariant" form Γx ⊙ ScaleInv(x) (the 1 + lets the carriers
  through at initialization; with a bare gate the first layers' updates start near zero).

    A      = e ⊙ x_t,    r = [ρ_h([A, x_h]), ρ_t(x_t), ρ_e(e), class context]
    m_fwd  = (W1 A + W2 x_h) ⊙ g_f(r)              (+ b_f(r) if h uncharged)   -> head
    m_bwd  = (W3 x_t + W4 e ⊙ x_h) ⊙ g_b(r)         (+ b_b(r) if t uncharged)   -> tail
    e'     = e + (W5 e + W6 x_t ⊙ x_h) ⊙ g_e(r)     (+ b_e(r) if e uncharged)
    x'_j   = x_j + (W7 x_j + W8 mean m_fwd + W9 mean m_bwd) ⊙ g_n(ρ_j(...), context_j)   (+ b_n if uncharged)

Mean aggregation is linear (max is not sign-equivariant); the pre-norm divides
features by their RMS over channels where no scale acts (an invariant of a sign),
and only applies a per-channel gain where one does. Messages, aggregation and updates
also commute with node relabelings, so the layer is permutation-equivariant too.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .charges import Charges
from .mlp import mlp

EPS = 1e-12


def safe_norm(sq: torch.Tensor) -> torch.Tensor:
    """sqrt of squared norms (M,), floored at EPS so that zero rows have a finite gradient."""
    return sq.clamp_min(EPS * EPS).sqrt()


def symmetrize(z: torch.Tensor, norm: torch.Tensor | None, sign: torch.Tensor, scale: torch.Tensor,
               bias: torch.Tensor) -> torch.Tensor:
    """The first layer of ρ from its linear part z = W v (M, k): act(W u + b) + act(σ W u + b), u = v / |v|
    where a scale acts (norm = |v| (M,), `safe_norm`; None when no row has a scale), σ = -1 where a sign
    acts. Its next linear layer belongs to the consumer (two linear maps in a row are one), so ρ costs
    one matrix product per row."""
    if norm is not None:
        z = torch.where(scale[:, None], z / norm[:, None], z)
    return F.silu(z + bias) + F.silu(torch.where(sign[:, None], -z, z) + bias)


class ChargeInvariant(nn.Module):
    """ρ: an invariant of vectors (M, d_in) that move by a sign, a positive scale or nothing, per row:
    φ(u) + φ(σ u) with φ an MLP, u and σ as in `symmetrize`.

    Shapes: v (M, d_in), sign (M,), scale (M,) bool -> (M, d_out)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.first = nn.Linear(d_in, d_out)
        self.second = nn.Linear(d_out, d_out)

    def forward(self, v: torch.Tensor, sign: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        z = F.linear(v, self.first.weight)
        norm = safe_norm(v.square().sum(-1)) if bool(scale.any()) else None
        return self.second(symmetrize(z, norm, sign, scale, self.first.bias))


class ChargedNorm(nn.Module):
    """RMS normalization over channels where no scale acts, a per-channel gain everywhere.

    Shapes: v (M, d), scale (M,) bool -> (M, d)."""

    def __init__(self, d: int):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(d))

    def forward(self, v: torch.Tensor, scale: torch.Tensor, any_scale: bool = True) -> torch.Tensor:
        normed = v * torch.rsqrt(v.square().mean(-1, keepdim=True) + 1e-6)
        return (torch.where(scale[:, None], v, normed) if any_scale else normed) * self.gain


def mean_at(x: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of rows x (M, d) at index (M,): (n, d); rows nothing reaches are 0."""
    total = x.new_zeros(n, x.shape[1]).index_add_(0, index, x)
    count = torch.bincount(index, minlength=n).clamp(min=1).to(x.dtype)
    return total / count[:, None]


class ScaleMPNNLayer(nn.Module):
    """One sign/scale/permutation-equivariant message-passing layer (module docstring).

    The per-edge work is a few (hidden x hidden) products: linear parts of node terms run on
    the N node rows and are gathered, the class context on the C class rows.

    Args:
        hidden: node and edge feature size.
        context: size of the invariant node and class context (type, layer, position, kernel shape).

    Shapes: x (N, hidden), e (E, hidden), node context (N, context), class context (C, context),
    edge_class (E,), `Charges` of the batch -> (x', e') of the same shapes and charges.
    """

    def __init__(self, hidden: int, context: int):
        super().__init__()
        d = self.hidden = hidden
        self.norm_x, self.norm_e = ChargedNorm(d), ChargedNorm(d)
        self.rho_pair = nn.Linear(2 * d, d)  # ρ_h([A, x_h])
        self.rho_node = nn.Linear(d, d)  # ρ_t(x_t)
        self.rho_edge = nn.Linear(d, d)  # ρ_e(e)
        self.gate_in = nn.Linear(3 * d + context, d)  # [ρ_pair, ρ_edge, ρ_t, context] -> hidden
        self.gate_out = nn.Linear(d, 6 * d)
        self.rho_update = nn.Linear(3 * d, d)
        self.node_gates = mlp([d + context, d, 2 * d])
        self.carry = nn.ModuleDict({k: nn.Linear(d, d, bias=False) for k in ("A", "xh", "xt", "exh", "e", "xx",
                                                                              "x", "in", "out")})

    def _gate_terms(self, r_pair, r_edge, r_tail, class_context):
        """gate_in's blocks: per edge [ρ_pair, ρ_edge], per node ρ_t, per class the context."""
        d, w = self.hidden, self.gate_in.weight
        return (F.linear(r_pair, w[:, :d]) + F.linear(r_edge, w[:, d:2 * d]), F.linear(r_tail, w[:, 2 * d:3 * d]),
                F.linear(class_context, w[:, 3 * d:], self.gate_in.bias))

    def forward(self, x: torch.Tensor, e: torch.Tensor, node_context: torch.Tensor, class_context: torch.Tensor,
                edge_class: torch.Tensor, q: Charges) -> tuple[torch.Tensor, torch.Tensor]:
        tail, head = q.oriented
        n, d, c = x.shape[0], self.hidden, self.carry
        scaled = bool(q.scale.any())
        norm = (lambda v: safe_norm(v.square().sum(1))) if scaled else (lambda v: None)
        xn, en = self.norm_x(x, q.scale, scaled), self.norm_e(e, q.edge_scale, scaled)
        xt, xh = xn.index_select(0, tail), xn.index_select(0, head)
        a = en * xt
        wp = self.rho_pair.weight
        pair_norm = safe_norm(a.square().sum(1) + xn.square().sum(1).index_select(0, head)) if scaled else None
        z_pair = F.linear(a, wp[:, :d]) + F.linear(xn, wp[:, d:]).index_select(0, head)
        r_pair = symmetrize(z_pair, pair_norm, q.sign[head], q.scale[head], self.rho_pair.bias)
        r_edge = symmetrize(F.linear(en, self.rho_edge.weight), norm(en), q.edge_sign, q.edge_scale,
                            self.rho_edge.bias)
        r_node = symmetrize(F.linear(xn, self.rho_node.weight), norm(xn), q.sign, q.scale, self.rho_node.bias)
        per_edge, per_node, per_class = self._gate_terms(r_pair, r_edge, r_node, class_context)
        hidden = F.silu(per_edge + per_node.index_select(0, tail) + per_class.index_select(0, edge_class))
        g_f, g_b, g_e, b_f, b_b, b_e = self.gate_out(hidden).chunk(6, 1)
        g_f, g_b, g_e = 1 + g_f, 1 + g_b, 1 + g_e
        no_scale = (lambda t: t * ~q.edge_scale[:, None]) if scaled else (lambda t: t)
        free = ~q.charged
        m_fwd = (c["A"](a) + c["xh"](xn).index_select(0, head)) * g_f + b_f * free[head][:, None]
        m_bwd = (c["xt"](xn).index_select(0, tail) + no_scale(c["exh"](en * xh))) * g_b + b_b * free[tail][:, None]
        e = e + (c["e"](en) + no_scale(c["xx"](xt * xh))) * g_e + b_e * ~(q.edge_sign | q.edge_scale)[:, None]
        m_in, m_out = mean_at(m_fwd, head, n), mean_at(m_bwd, tail, n)
        upd = torch.cat([xn, m_in, m_out], 1)
        inv = symmetrize(F.linear(upd, self.rho_update.weight), norm(upd), q.sign, q.scale, self.rho_update.bias)
        gate, bias = self.node_gates(torch.cat([inv, node_context], 1)).chunk(2, 1)
        x = x + (c["x"](xn) + c["in"](m_in) + c["out"](m_out)) * (1 + gate) + bias * free[:, None]
        return x, e

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}"
