"""Mixture-of-experts dispatch by writes (issue 18): top-k positions scattered into a dense
(tokens, experts) gate matrix or mask, tokens put into per-expert buffers by index_put and
the results added back by index_add, per-expert statistics (Switch's load-balancing loss)
gathered by index_add along the expert axis. Permuting the experts with the router's rows
is a symmetry of each; the parser finds it (experts, expert hidden units, residual stream:
[4, 5, 6]) where the positions are only used to address the expert axis, and fixes the
expert axis where they leak into arithmetic or are written at fixed positions (negative
controls, [5, 6], with the reason checked).

Checked as in `catalogue` (expected multiset of sizes, a true symmetry on 3 re-drawn
float64 copies, each group moving outputs alone), plus a hand-built expert permutation
that keeps the outputs exactly where the expert group is expected and moves them in every
negative control.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from .catalogue import Case, check_each_group_alone, check_symmetry, outputs, parse_case, redraw, rel_change, seeded, x64

D, E, FF, K = 6, 4, 5, 2
EXPERTS = [4, 5, 6]
NO_EXPERTS = [5, 6]


class DispatchMoE(nn.Module):
    """A residual MoE block over stacked experts w1 (E, d, f), w2 (E, f, d), top-2 routing.

    dispatch: "scatter" (gates = zeros(B, E).scatter(1, idx, softmax(vals)), then a dense
    einsum over the experts), "scatter_add" (the same by scatter_add), "scatter_mask" (a
    0/1 mask of the chosen experts, scatter of a value, times the softmax), "buffers" (tokens
    index_put into per-expert buffers (E, B, d), each expert run on its buffer, outputs read
    back at (idx, token) and index_add-ed into the tokens, with Switch's load-balancing loss
    from tokens-per-expert counted by index_add along the expert axis, returned as a second
    output), "index_copy" (each expert's last routed token copied into an (E, d) memory, each
    expert run on its row, read by the softmax), "index_fill" (the experts token 0 chose zeroed in every token's softmax).
    misuse: a way the routing breaks the expert symmetry ("" for none; see NEGATIVE):
    "shifted" positions (idx + 1) % E, "wider" a gate matrix of E + 2 columns read from
    column 1, "positions_as_values" the chosen experts' ids summed into the gates,
    "fixed_rows" an (E, d) memory written at rows token % E and read by the softmax.
    """

    def __init__(self, dispatch: str, misuse: str = ""):
        super().__init__()
        self.dispatch, self.misuse = dispatch, misuse
        self.inp, self.router, self.out = nn.Linear(3, D), nn.Linear(D, E), nn.Linear(D, 2)
        self.w1 = nn.Parameter(torch.randn(E, D, FF) / D**0.5)
        self.w2 = nn.Parameter(torch.randn(E, FF, D) / FF**0.5)

    def _experts(self, h: torch.Tensor) -> torch.Tensor:
        """Every expert on every token: (B, E, d)."""
        u = torch.relu(torch.einsum("bd,edf->bef", h, self.w1))
        return torch.einsum("bef,efd->bed", u, self.w2)

    def forward(self, x):
        h = self.inp(x)
        logits = self.router(h)
        probs = logits.softmax(-1)
        vals, idx = logits.topk(K, -1)
        if self.misuse == "shifted":
            idx = (idx + 1) % E
        gates = vals.softmax(-1)
        if self.dispatch == "buffers":
            return self._via_buffers(h, probs, idx, gates)
        if self.dispatch == "index_copy":
            memory = h.new_zeros(E, D).index_copy(0, idx[:, 0], h)
            u = torch.relu(torch.einsum("ed,edf->ef", memory, self.w1))
            return self.out(h + probs @ torch.einsum("ef,efd->ed", u, self.w2))
        if self.dispatch == "index_fill":
            return self.out(h + torch.einsum("be,bed->bd", probs.index_fill(1, idx[0], 0.0), self._experts(h)))
        width = E + 2 if self.misuse == "wider" else E
        if self.dispatch == "scatter_add":
            dense = h.new_zeros(h.shape[0], width).scatter_add(1, idx, gates)
        elif self.dispatch == "scatter_mask":
            dense = h.new_zeros(h.shape[0], width).scatter(1, idx, 1.0)
            if self.misuse == "positions_as_values":
                dense = dense + idx.new_zeros(h.shape[0], E).scatter_add(1, idx, idx).sum(-1, keepdim=True).to(h.dtype)
            dense = dense[:, :E] * probs
        else:
            dense = h.new_zeros(h.shape[0], width).scatter(1, idx, gates)
        lo = 1 if self.misuse == "wider" else 0  # a window of E columns that is not the experts' own
        return self.out(h + torch.einsum("be,bed->bd", dense[:, lo:lo + E], self._experts(h)))

    def _via_buffers(self, h, probs, idx, gates):
        b = h.shape[0]
        flat = idx.reshape(-1)
        tok = torch.arange(b).repeat_interleave(K)
        buf = h.new_zeros(E, b, D).index_put((flat, tok), h[tok])
        u = torch.relu(torch.einsum("ebd,edf->ebf", buf, self.w1))
        y = torch.einsum("ebf,efd->ebd", u, self.w2)
        mixed = h.new_zeros(b, D).index_add(0, tok, y[flat, tok] * gates.reshape(-1, 1))
        if self.misuse == "fixed_rows":
            mixed = mixed + probs @ h.new_zeros(E, D).index_add(0, torch.arange(b) % E, h)
        counts = h.new_zeros(E).index_add(0, flat, torch.ones_like(flat, dtype=h.dtype))
        balance = E * (counts / (b * K) * probs.mean(0)).sum()
        return self.out(h + mixed), balance


X = x64(7, 3)
ONE = (((X,), {}),)
POSITIVE = [
    Case(f"dispatch_{d}", seeded(lambda d=d: DispatchMoE(d)), ONE, EXPERTS)
    for d in ("scatter", "scatter_add", "scatter_mask", "buffers", "index_copy", "index_fill")
]
NEGATIVE = [  # (case, what the expert axis is fixed by)
    (Case("scatter_shifted", seeded(lambda: DispatchMoE("scatter", "shifted")), ONE, NO_EXPERTS),
     "index values used by add"),
    (Case("scatter_wider", seeded(lambda: DispatchMoE("scatter", "wider")), ONE, NO_EXPERTS), "scattered at"),
    (Case("scatter_positions_as_values", seeded(lambda: DispatchMoE("scatter_mask", "positions_as_values")), ONE,
          NO_EXPERTS), "scattered at"),
    (Case("index_add_fixed_rows", seeded(lambda: DispatchMoE("buffers", "fixed_rows")), ONE, NO_EXPERTS),
     "written at"),
]
CASES = POSITIVE + [c for c, _ in NEGATIVE]


def _expert_permutation(sd: dict[str, torch.Tensor], perm: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v[perm] if k in {"router.weight", "router.bias", "w1", "w2"} else v for k, v in sd.items()}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_spec_is_a_symmetry(case: Case):
    check_symmetry(case)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_negative_control_one_tensor_alone(case: Case):
    check_each_group_alone(case)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_expert_permutation_by_hand(case: Case):
    """The hand-built expert permutation keeps the outputs exactly where the expert group is
    expected and moves them in every negative control (so fixing the axis was needed)."""
    model = case.build()
    perm = torch.tensor([1, 3, 0, 2])
    for seed in range(3):
        sd = redraw(model, seed)
        change = rel_change(outputs(model, _expert_permutation(sd, perm), case.calls), outputs(model, sd, case.calls))
        if case.expected == EXPERTS:
            assert change <= 1e-12, f"{case.name}: seed {seed}: the expert permutation moved outputs by {change:.2e}"
        else:
            assert change > 1e-3, f"{case.name}: seed {seed}: the expert permutation moved outputs by {change:.2e} only"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in POSITIVE])
def test_experts_permute_with_the_router_rows(case: Case):
    _, spec, _ = parse_case(case)
    (experts,) = [n for n, g in spec.groups.items() if g.size == E]
    assert {(m.key, m.axis) for m in spec.members(experts)} == {
        ("router.weight", 0), ("router.bias", 0), ("w1", 0), ("w2", 0)}


@pytest.mark.parametrize(("case", "reason"), [pytest.param(c, r, id=c.name) for c, r in NEGATIVE])
def test_negative_controls_fix_the_expert_axis_and_say_why(case: Case, reason: str):
    _, spec, _ = parse_case(case)
    assert not spec.entry("w1").axes[0][0].group and not spec.entry("router.weight").axes[0][0].group
    why = {n.reason for n in spec.frozen if (n.key, n.axis) in {("w1", 0), ("router.weight", 0)}}
    assert any(reason in w for w in why), f"{case.name}: {why}"
