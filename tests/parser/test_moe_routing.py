"""Mixture-of-experts catalogue (issue 18): permuting the experts, with the router's rows,
is a symmetry of dense soft routing, of top-k and argmax (switch) routing and of one-hot
dispatch; the parser finds it (the expert group of size E beside the expert-hidden and
residual groups) wherever the routing positions are only used to read the experts, and
fixes the expert axis wherever they are used in any other way (negative controls).

Every case is checked as in `catalogue` (expected multiset of sizes, a true symmetry on 3
re-drawn float64 copies, each group moving outputs alone), and the expert permutation
itself, built here by hand, must leave the outputs alone exactly in the cases where the
expert group is expected, and move them in the negative controls. Three transformers MoE
families (Mixtral, Qwen2-MoE, GPT-OSS) with batched experts close the catalogue.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from .catalogue import Case, check_each_group_alone, check_symmetry, outputs, parse_case, redraw, rel_change, seeded, x64

D, E, FF = 6, 4, 5
EXPERTS = [4, 5, 6]  # experts, expert hidden units, residual stream
NO_EXPERTS = [5, 6]  # the expert axis fixed; hidden units still permute in every expert alike


class StackedMoE(nn.Module):
    """A residual MoE block over stacked expert weights w1 (E, d, f), w2 (E, f, d).

    routing: "dense" (softmax over all experts, einsum over the expert axis), "topk"
    (the k chosen experts read as w[idx], gates the softmax of their logits), "select"
    (the same, experts read by index_select on the flattened positions cast to int32, biases by
    embedding), "switch" (argmax, gate the chosen softmax probability read with gather),
    "onehot" (top-k of the probabilities, dispatched by one_hot(idx, E) into a dense einsum).
    misuse: a way the routing positions are used besides reading the experts, each of
    which breaks the expert symmetry ("" for none; see NEGATIVE).
    """

    def __init__(self, routing: str, k: int = 2, biases: bool = False, misuse: str = ""):
        super().__init__()
        self.routing, self.k, self.misuse = routing, k, misuse
        self.inp, self.router, self.out = nn.Linear(3, D), nn.Linear(D, E), nn.Linear(D, 2)
        self.w1 = nn.Parameter(torch.randn(E, D, FF) / D**0.5)
        self.w2 = nn.Parameter(torch.randn(E, FF, D) / FF**0.5)
        self.b1 = nn.Parameter(torch.randn(E, FF)) if biases else None
        self.b2 = nn.Parameter(torch.randn(E, D)) if biases else None
        self.table = nn.Parameter(torch.randn(E + 2, D)) if misuse == "other_size" else None

    def forward(self, x, z=None):
        h = self.inp(x)
        logits = self.router(h)
        if self.misuse == "relu_router":
            logits = torch.relu(logits)
        if self.routing == "dense":
            u = torch.relu(torch.einsum("bd,edf->bef", h, self.w1))
            y = torch.einsum("bef,efd->bed", u, self.w2)
            return self.out(h + torch.einsum("be,bed->bd", logits.softmax(-1), y))
        if self.routing == "onehot":
            vals, idx = logits.softmax(-1).topk(self.k, -1)
            gates = torch.einsum("bk,bke->be", vals, F.one_hot(idx, E).to(h.dtype))
            u = torch.relu(torch.einsum("bd,edf->bef", h, self.w1))
            return self.out(h + torch.einsum("be,bed->bd", gates, torch.einsum("bef,efd->bed", u, self.w2)))
        if self.routing == "switch":
            idx = logits.argmax(-1)[:, None]
            gates = logits.softmax(-1).gather(-1, idx)
        else:
            vals, idx = logits.topk(self.k, -1)
            gates = vals.softmax(-1)
        if self.misuse == "input_gather":
            gates = gates * z.gather(-1, idx)
        first = (idx * 3) % E if self.misuse == "arithmetic" else idx
        u = torch.einsum("bd,bkdf->bkf", h, self._read(self.w1, first))
        if self.b1 is not None:
            u = u + self._read(self.b1, idx)
        y = torch.einsum("bkf,bkfd->bkd", torch.relu(u), self._read(self.w2, idx))
        if self.b2 is not None:
            y = y + self._read(self.b2, idx)
        if self.misuse == "other_size":
            y = y + self.table[idx]
        mixed = h + torch.einsum("bk,bkd->bd", gates, y)
        if self.misuse == "float_index":
            mixed = mixed + idx.to(h.dtype).sum(-1, keepdim=True)
        return (self.out(mixed), idx) if self.misuse == "returned" else self.out(mixed)

    def _read(self, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The chosen experts' slices of a stacked tensor, shaped idx.shape + w.shape[1:]."""
        if self.routing != "select":
            return w[idx]
        if w.ndim == 2:
            return F.embedding(idx, w)
        return w.index_select(0, idx.flatten().int()).view(*idx.shape, *w.shape[1:])


X = x64(7, 3)
Z = x64(7, E, seed=2)
ONE = (((X,), {}),)
POSITIVE = [
    Case("dense", seeded(lambda: StackedMoE("dense")), ONE, EXPERTS),
    Case("top1", seeded(lambda: StackedMoE("topk", k=1)), ONE, EXPERTS),
    Case("top2", seeded(lambda: StackedMoE("topk", k=2)), ONE, EXPERTS),
    Case("top1_biases", seeded(lambda: StackedMoE("topk", k=1, biases=True)), ONE, EXPERTS),
    Case("top2_biases", seeded(lambda: StackedMoE("topk", k=2, biases=True)), ONE, EXPERTS),
    Case("top2_index_select_embedding", seeded(lambda: StackedMoE("select", k=2, biases=True)), ONE, EXPERTS),
    Case("switch_argmax", seeded(lambda: StackedMoE("switch")), ONE, EXPERTS),
    Case("switch_argmax_biases", seeded(lambda: StackedMoE("switch", biases=True)), ONE, EXPERTS),
    Case("onehot_dispatch", seeded(lambda: StackedMoE("onehot")), ONE, EXPERTS),
]
NEGATIVE = [  # (case, what the expert axis is fixed by)
    (Case("float_index", seeded(lambda: StackedMoE("topk", misuse="float_index")), ONE, NO_EXPERTS),
     "index values used by to "),
    (Case("index_arithmetic", seeded(lambda: StackedMoE("topk", misuse="arithmetic")), ONE, NO_EXPERTS),
     "index values used by mul"),
    (Case("index_returned", seeded(lambda: StackedMoE("topk", misuse="returned")), ONE, NO_EXPERTS),
     "index values returned"),
    (Case("other_size", seeded(lambda: StackedMoE("topk", misuse="other_size")), ONE, NO_EXPERTS),
     "indexed at"),
    (Case("input_gather", seeded(lambda: StackedMoE("topk", misuse="input_gather")), (((X, Z), {}),), NO_EXPERTS),
     "model input"),
    (Case("relu_router_ties", seeded(lambda: StackedMoE("topk", misuse="relu_router")), ONE, NO_EXPERTS),
     "values may tie (relu"),
]
CASES = POSITIVE + [c for c, _ in NEGATIVE]


def _expert_permutation(sd: dict[str, torch.Tensor], perm: torch.Tensor) -> dict[str, torch.Tensor]:
    """Experts reordered by hand: router rows, and axis 0 of every stacked expert tensor."""
    experts = {"router.weight", "router.bias", "w1", "w2", "b1", "b2"}
    return {k: v[perm] if k in experts else v for k, v in sd.items()}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_spec_is_a_symmetry(case: Case):
    check_symmetry(case)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_negative_control_one_tensor_alone(case: Case):
    check_each_group_alone(case)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_expert_permutation_by_hand(case: Case):
    """The hand-built expert permutation keeps the outputs exactly where the expert group is
    expected, and moves them in every negative control (so fixing the axis was needed).
    With ReLU'd logits it breaks where the logits tie: a router bias of -10 makes them all 0."""
    model = case.build()
    perm = torch.tensor([1, 3, 0, 2])
    for seed in range(3):
        sd = redraw(model, seed)
        if case.name == "relu_router_ties":
            sd["router.bias"] = torch.full_like(sd["router.bias"], -10.0)
        change = rel_change(outputs(model, _expert_permutation(sd, perm), case.calls), outputs(model, sd, case.calls))
        if case.expected == EXPERTS:
            assert change <= 1e-12, f"{case.name}: seed {seed}: the expert permutation moved outputs by {change:.2e}"
        else:
            assert change > 1e-3, f"{case.name}: seed {seed}: the expert permutation moved outputs by {change:.2e} only"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in POSITIVE])
def test_experts_permute_with_the_router_rows(case: Case):
    model, spec, _ = parse_case(case)
    (experts,) = [n for n, g in spec.groups.items() if g.size == E]
    stacked = {k for k in ("w1", "w2", "b1", "b2") if getattr(model, k) is not None}
    assert {(m.key, m.axis) for m in spec.members(experts)} == {
        ("router.weight", 0), ("router.bias", 0), *((k, 0) for k in stacked)}


@pytest.mark.parametrize(("case", "reason"), [pytest.param(c, r, id=c.name) for c, r in NEGATIVE])
def test_negative_controls_fix_the_expert_axis_and_say_why(case: Case, reason: str):
    """The frozen-axis note (the first reason an atom was fixed) names the misuse."""
    _, spec, _ = parse_case(case)
    assert not spec.entry("w1").axes[0][0].group and not spec.entry("router.weight").axes[0][0].group
    why = {n.reason for n in spec.frozen if (n.key, n.axis) in {("w1", 0), ("router.weight", 0)}}
    assert any(reason in w for w in why), f"{case.name}: {why}"


HF_COMMON = dict(vocab_size=50, hidden_size=16, intermediate_size=12, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=1, max_position_embeddings=32)
HF_FAMILIES = {  # config class, its MoE arguments, expected group sizes, the MLP's expert-indexed tensors
    "mixtral": ("MixtralConfig", dict(num_local_experts=E, num_experts_per_tok=2), [2, 4, 8, 12, 16],
                ("gate.weight", "experts.gate_up_proj", "experts.down_proj")),
    "qwen2_moe": ("Qwen2MoeConfig", dict(num_experts=E, num_experts_per_tok=2, moe_intermediate_size=8,
                                         shared_expert_intermediate_size=10), [2, 4, 8, 8, 10, 16],
                  ("gate.weight", "experts.gate_up_proj", "experts.down_proj")),
    "gpt_oss": ("GptOssConfig", dict(num_local_experts=E, num_experts_per_tok=2, head_dim=8, layer_types=["full_attention"]),
                [2, 4, 8, 16], ("router.weight", "router.bias", "experts.gate_up_proj", "experts.gate_up_proj_bias",
                                "experts.down_proj", "experts.down_proj_bias")),
}


def _hf_moe(family: str) -> nn.Module:
    """A one-layer transformers MoE (4 experts, top-2) whose experts run the batched
    implementation (`_experts_implementation = "batched_mm"`): top-k positions read the
    stacked expert weights as w[idx]."""
    transformers = pytest.importorskip("transformers")
    config_class, moe, _, _ = HF_FAMILIES[family]
    cfg = getattr(transformers, config_class)(**HF_COMMON, **moe)
    cfg._experts_implementation = "batched_mm"
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    if getattr(model.config, "_experts_implementation", None) != "batched_mm":
        pytest.skip("this transformers has no batched experts implementation")

    class Logits(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, ids):
            return self.m(input_ids=ids, use_cache=False).logits

    return Logits()


@pytest.mark.parametrize("family", list(HF_FAMILIES))
def test_transformers_batched_experts_keep_the_expert_group(family: str):
    """float32 (the routers cast to float32, so float64 buys nothing): the expected sizes,
    the expert group exactly the router rows and the stacked expert tensors; random
    elements and the hand-built expert permutation keep the logits on 3 re-drawn copies,
    one expert tensor permuted alone moves them."""
    *_, expected, indexed = HF_FAMILIES[family]
    model = _hf_moe(family)
    calls = (((torch.arange(10).reshape(2, 5) % 50,), {}),)
    spec = parse_case(Case(family, lambda: model, calls, expected))[1]
    assert sorted(g.size for g in spec.groups.values()) == expected and spec.verified
    (experts,) = [n for n, g in spec.groups.items() if g.size == E]
    by_hand = {"m.model.layers.0.mlp." + k for k in indexed}
    assert {(m.key, m.axis) for m in spec.members(experts)} == {(k, 0) for k in by_hand}
    perm = torch.tensor([1, 3, 0, 2])
    down = "m.model.layers.0.mlp.experts.down_proj"
    for seed in range(3):
        sd = redraw(model, seed)
        ref = outputs(model, sd, calls)
        g = spec.random_element(torch.Generator().manual_seed(seed))
        assert rel_change(outputs(model, spec.apply(sd, g), calls), ref) <= 1e-5
        assert rel_change(outputs(model, {k: v[perm] if k in by_hand else v for k, v in sd.items()}, calls), ref) <= 1e-5
        assert rel_change(outputs(model, {**sd, down: sd[down][perm]}, calls), ref) > 1e-3
