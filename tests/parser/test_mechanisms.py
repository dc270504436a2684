"""Parser catalogue, one model per mechanism of issue 18: the spec is a true symmetry on
every call path the model has (other call paths included), checked here, outside the
library's own verification, with weights re-drawn at O(1) scale in float64; the groups
found are the expected multiset of sizes; a negative control (one tensor permuted alone)
moves the outputs.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

import weightspace as ws
from weightspace.errors import SpecVerificationError, TraceError
from weightspace.parser.verify import verify

Call = tuple[tuple, dict]


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], nn.Module]
    calls: tuple[Call, ...]  # the first is the one traced; all are checked
    expected: list[int]
    traced: tuple[Call, ...] = field(default=())  # other_calls passed to parse (default: all but the first)

    def __repr__(self) -> str:
        return f"Case({self.name})"


def _x(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---------------------------------------------------------------------------- models
class AuxHead(nn.Module):
    """A second head read only when forward(x, aux=True)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.aux = nn.Linear(4, 8), nn.Linear(8, 3), nn.Linear(8, 3)

    def forward(self, x, aux=False):
        h = torch.relu(self.a(x))
        return self.b(h) + self.aux(h) if aux else self.b(h)


class MaskToken(nn.Module):
    """ViT-style: a learned mask token replaces masked positions only when a mask is given."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(6, 8)
        self.mask_token = nn.Parameter(torch.randn(8))
        self.up, self.down, self.head = nn.Linear(8, 12), nn.Linear(12, 8), nn.Linear(8, 3)

    def forward(self, x, mask=None):
        h = self.embed(x)
        if mask is not None:
            h = torch.where(mask[..., None], self.mask_token, h)
        h = h + self.down(F.gelu(self.up(h)))
        return self.head(h.mean(1))


class LayerScaleBlock(nn.Module):
    """Residual branch scaled by LayerScale at its usual init (1e-6); `flip` breaks the
    branch's hidden symmetry (a wrong rule that only the re-drawn check can see)."""

    def __init__(self, flip: bool = False):
        super().__init__()
        self.embed, self.up, self.down, self.head = nn.Linear(4, 8), nn.Linear(8, 12), nn.Linear(12, 8), nn.Linear(8, 3)
        self.gamma = nn.Parameter(torch.full((8,), 1e-6))
        self.flip = flip

    def forward(self, x):
        h = self.embed(x)
        u = torch.relu(self.up(h))
        return self.head(h + self.gamma * self.down(u.flip(-1) if self.flip else u))


class Sandwich(nn.Module):
    def __init__(self, op, hidden: int = 8):
        super().__init__()
        self.a, self.b = nn.Linear(4, hidden), nn.Linear(hidden, 3)
        self.op = op

    def forward(self, x):
        return self.b(self.op(self, self.a(x)))


def _with_index(module: nn.Module, name: str, value: torch.Tensor) -> nn.Module:
    module.register_buffer(name, value)
    return module


class WeightNormPositional(nn.Module):
    """wav2vec2-style: a weight-normed (dim=2) grouped positional conv added to the residual stream."""

    def __init__(self, parametrized: bool):
        super().__init__()
        self.embed, self.head = nn.Linear(5, 8), nn.Linear(8, 3)
        conv = nn.Conv1d(8, 8, 3, padding=1, groups=2)
        wn = nn.utils.parametrizations.weight_norm if parametrized else nn.utils.weight_norm
        self.pos = wn(conv, name="weight", dim=2)
        self.up, self.down = wn(nn.Linear(8, 12)), nn.Linear(12, 8)

    def forward(self, x):
        h = self.embed(x)
        h = h + F.gelu(self.pos(h.transpose(1, 2))).transpose(1, 2)
        h = h + self.down(torch.tanh(self.up(h)))
        return self.head(h.mean(1))


class PReLUNet(nn.Module):
    def __init__(self, per_channel: bool):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 6, 3), nn.Conv2d(6, 4, 1)
        self.act = nn.PReLU(6 if per_channel else 1)

    def forward(self, x):
        return self.c2(self.act(self.c1(x))).mean((2, 3))


class ShuffleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.b(F.channel_shuffle(torch.relu(self.a(x)), 2)).mean((2, 3))


class CellNet(nn.Module):
    """A conv+LSTMCell-style voice detector head: LSTMCell unrolled over time."""

    def __init__(self, kind: str = "lstm"):
        super().__init__()
        self.kind = kind
        self.cell = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.RNNCell}[kind](4, 6)
        self.out = nn.Linear(6, 2)

    def forward(self, x):
        h = torch.zeros(x.shape[1], 6, dtype=x.dtype)
        c = torch.zeros_like(h)
        for t in range(x.shape[0]):
            if self.kind == "lstm":
                h, c = self.cell(x[t], (h, c))
            else:
                h = self.cell(x[t], h)
        return self.out(h)


class StackedLSTM(nn.Module):
    """A speaker-encoder-style LSTM read through its final hidden state."""

    def __init__(self, read: str):
        super().__init__()
        self.read = read
        self.rnn = nn.LSTM(4, 6, num_layers=2)
        self.out = nn.Linear(6 if read == "last" else 12, 2)

    def forward(self, x):
        _, (h, _) = self.rnn(x)
        return self.out(h[-1] if self.read == "last" else h.permute(1, 0, 2).flatten(1))


class ShapeOnly(nn.Module):
    """An op without a rule whose output is used only for its shape."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = self.a(x)
        return self.b(h + torch.zeros_like(torch.special.bessel_j0(h)))


class StackedMoE(nn.Module):
    """Mixture of experts with stacked expert weights (E, ...): dense soft routing, where
    permuting the experts with the router's rows is a symmetry the einsum rules find, or
    top-k routing, whose expert indices fix the expert axis (sound, the expert group lost)."""

    def __init__(self, top_k: int | None, d: int = 6, experts: int = 4, f: int = 5):
        super().__init__()
        self.top_k = top_k
        self.inp, self.router, self.out = nn.Linear(3, d), nn.Linear(d, experts), nn.Linear(d, 2)
        self.w1 = nn.Parameter(torch.randn(experts, d, f) / d**0.5)
        self.w2 = nn.Parameter(torch.randn(experts, f, d) / f**0.5)

    def forward(self, x):
        h = self.inp(x)
        logits = self.router(h)
        if self.top_k is None:
            u = torch.relu(torch.einsum("bd,edf->bef", h, self.w1))
            y = torch.einsum("bef,efd->bed", u, self.w2)
            return self.out(h + torch.einsum("be,bed->bd", logits.softmax(-1), y))
        vals, idx = logits.topk(self.top_k, -1)
        u = torch.relu(torch.einsum("bd,bkdf->bkf", h, self.w1[idx]))
        y = torch.einsum("bkf,bkfd->bkd", u, self.w2[idx])
        return self.out(h + torch.einsum("bk,bkd->bd", vals.softmax(-1), y))


class BartLogits(nn.Module):
    """A tiny BART (encoder-decoder, tied head): an op used only for its shape froze its
    residual stream before."""

    def __init__(self):
        super().__init__()
        from transformers import BartConfig, BartForConditionalGeneration

        cfg = BartConfig(vocab_size=40, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                         decoder_attention_heads=2, encoder_ffn_dim=24, decoder_ffn_dim=24, max_position_embeddings=32)
        self.m = BartForConditionalGeneration(cfg)

    def forward(self, ids, dec):
        return self.m(input_ids=ids, decoder_input_ids=dec, use_cache=False).logits


class UnequalCat(nn.Module):
    """Two branches of widths 8 and 12 joined by torch.cat, then a Linear: chunks of gcd 4."""

    def __init__(self, widths=(8, 12)):
        super().__init__()
        self.a, self.b = nn.Linear(4, widths[0]), nn.Linear(4, widths[1])
        self.head = nn.Linear(sum(widths), 3)

    def forward(self, x):
        return self.head(torch.cat([torch.relu(self.a(x)), torch.tanh(self.b(x))], -1))


class UnequalQKV(nn.Module):
    """A fused q/k/v projection split unequally ([4, 4, 8]: v twice as wide as q, k) in a residual block."""

    def __init__(self):
        super().__init__()
        self.embed, self.qkv, self.o, self.head = nn.Linear(3, 6), nn.Linear(6, 16), nn.Linear(8, 6), nn.Linear(6, 2)

    def forward(self, x):
        h = self.embed(x)
        q, k, v = self.qkv(h).split([4, 4, 8], -1)
        a = torch.softmax(q @ k.transpose(-1, -2) / 2, -1) @ v
        return self.head((h + self.o(a)).mean(1))


def _seeded(fn):
    def build():
        torch.manual_seed(0)
        return fn().double().eval()
    return build


X = _x(5, 4)
MASK = torch.tensor([[True, False, False], [False, True, False]])
CASES = [
    Case("aux_head", _seeded(AuxHead), (((X,), {}), ((X,), {"aux": True})), [8]),
    Case("mask_token", _seeded(MaskToken), (((_x(2, 3, 6),), {}), ((_x(2, 3, 6),), {"mask": MASK})), [8, 12]),
    Case("layerscale", _seeded(LayerScaleBlock), (((X,), {}),), [8, 12]),
    Case("roll_flat", _seeded(lambda: Sandwich(lambda m, h: torch.roll(torch.relu(h), 1))), (((X,), {}),), []),
    Case("roll_batch", _seeded(lambda: Sandwich(lambda m, h: torch.roll(torch.relu(h), 1, 0))), (((X,), {}),), [8]),
    Case("index_select_buffer", _seeded(lambda: _with_index(
        Sandwich(lambda m, h: torch.relu(h).index_select(0, m.idx)), "idx", torch.tensor([2, 0, 1, 4, 3]))),
        (((X,), {}),), [8]),
    Case("gather_hidden", _seeded(lambda: _with_index(
        Sandwich(lambda m, h: torch.relu(h).gather(1, m.idx)), "idx", torch.randint(0, 8, (5, 8)))),
        (((X,), {}),), []),
    Case("gather_batch", _seeded(lambda: _with_index(
        Sandwich(lambda m, h: torch.tanh(h).gather(0, m.idx)), "idx", torch.randint(0, 5, (3, 8)))),
        (((X,), {}),), [8]),
    Case("weight_norm_old", _seeded(lambda: WeightNormPositional(False)), (((_x(2, 7, 5),), {}),), [2, 4, 12]),
    Case("weight_norm_parametrized", _seeded(lambda: WeightNormPositional(True)), (((_x(2, 7, 5),), {}),), [2, 4, 12]),
    Case("prelu_per_channel", _seeded(lambda: PReLUNet(True)), (((_x(2, 3, 6, 6),), {}),), [6]),
    Case("prelu_shared", _seeded(lambda: PReLUNet(False)), (((_x(2, 3, 6, 6),), {}),), [6]),
    Case("channel_shuffle", _seeded(ShuffleNet), (((_x(2, 3, 4, 4),), {}),), [2, 4]),
    Case("lstm_cell", _seeded(CellNet), (((_x(3, 2, 4),), {}),), [6]),
    Case("gru_cell", _seeded(lambda: CellNet("gru")), (((_x(3, 2, 4),), {}),), [6]),
    Case("rnn_cell", _seeded(lambda: CellNet("rnn")), (((_x(3, 2, 4),), {}),), [6]),
    Case("lstm_h_n_last", _seeded(lambda: StackedLSTM("last")), (((_x(3, 2, 4),), {}),), [6, 6]),
    Case("lstm_h_n_all", _seeded(lambda: StackedLSTM("all")), (((_x(3, 2, 4),), {}),), [6]),
    Case("shape_only_use", _seeded(ShapeOnly), (((X,), {}),), [8]),
    Case("bart_encoder_decoder", _seeded(BartLogits), (((torch.arange(10).reshape(2, 5) % 40,
                                                        torch.arange(8).reshape(2, 4) + 20), {}),),
         [2, 2, 2, 8, 8, 8, 8, 8, 8, 16, 24, 24]),
    Case("moe_dense_stacked", _seeded(lambda: StackedMoE(None)), (((_x(7, 3),), {}),), [4, 5, 6]),
    Case("cat_unequal", _seeded(UnequalCat), (((X,), {}),), [4]),
    Case("cat_coprime", _seeded(lambda: UnequalCat((3, 5))), (((X,), {}),), []),
    Case("split_unequal_qkv", _seeded(UnequalQKV), (((_x(2, 5, 3),), {}),), [4, 6]),
    Case("moe_topk_stacked", _seeded(lambda: StackedMoE(2)), (((_x(7, 3),), {}),), [5, 6]),
]


# ---------------------------------------------------------------------------- checks (library-free)
def _redraw(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Every floating parameter re-drawn at O(1) scale (fan-in scaled matrices, 1 + N(0, 1/4) vectors)."""
    gen = torch.Generator().manual_seed(seed)
    out, drawn = {}, {}
    params = {id(p) for p in model.parameters()}
    for key, t in model.state_dict(keep_vars=True).items():
        if id(t) in drawn:  # a tied tensor stays one tensor
            out[key] = drawn[id(t)]
            continue
        value = t.detach()
        if id(t) in params and value.is_floating_point():
            noise = torch.randn(value.shape, generator=gen, dtype=value.dtype)
            value = noise * value[0].numel() ** -0.5 if value.ndim >= 2 else 1 + 0.5 * noise
        out[key] = drawn[id(t)] = value
    return out


@torch.no_grad()
def _outputs(model: nn.Module, sd: dict, calls) -> list[torch.Tensor]:
    """Outputs of every call; a tied tensor is passed once, under its first key."""
    first: dict[int, str] = {}
    keys = {first.setdefault(id(t), k) for k, t in model.state_dict(keep_vars=True).items()}
    sd = {k: v for k, v in sd.items() if k in keys}
    return [functional_call(model, sd, args, kwargs, strict=False) for args, kwargs in calls]


def _rel(new: list[torch.Tensor], ref: list[torch.Tensor]) -> float:
    return max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-12)) for a, b in zip(new, ref))


def _parse(case: Case):
    model = case.build()
    (args, kwargs), *rest = case.calls
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = ws.parse(model, args, kwargs, other_calls=case.traced or tuple(rest))
    return model, spec, [str(w.message) for w in caught]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_spec_is_a_symmetry_on_every_call_path(case: Case):
    model, spec, _ = _parse(case)
    sizes = sorted(g.size for g in spec.groups.values())
    assert sizes == sorted(case.expected), f"{case.name}: groups {sizes}; {spec!r}"
    assert spec.verified
    for seed in range(3):
        sd = _redraw(model, seed)
        ref = _outputs(model, sd, case.calls)
        g = spec.random_element(torch.Generator().manual_seed(seed))
        err = _rel(_outputs(model, spec.apply(sd, g), case.calls), ref)
        assert err <= 1e-9, f"{case.name}: seed {seed}: outputs moved by {err:.2e}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES if c.expected])
def test_negative_control_one_tensor_alone(case: Case):
    """Each group, applied to one of its parameter tensors alone, moves the outputs."""
    model, spec, _ = _parse(case)
    sd = _redraw(model, 0)
    ref = _outputs(model, sd, case.calls)
    params = {k for k, _ in model.named_parameters()}
    for name, group in spec.groups.items():
        member = next(m for m in spec.members(name) if m.key in params)
        shift = ws.GroupElement({name: torch.roll(torch.arange(group.size), 1)})
        alone = {**sd, **spec.apply({member.key: sd[member.key]}, shift, strict=False)}
        change = _rel(_outputs(model, alone, case.calls), ref)
        assert change > 1e-3, f"{case.name}: permuting only {member.key} ({name}) changed outputs by {change:.2e}"


# ---------------------------------------------------------------------------- mechanism details
def test_unread_entries_are_fixed_and_named():
    """Traced on one call only, the aux head is not read: its entries are fixed, a warning names them."""
    model = _seeded(AuxHead)()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = ws.parse(model, (X,))
    messages = " ".join(str(w.message) for w in caught)
    assert "aux.weight" in messages and "other_calls" in messages
    assert not spec.entry("aux.weight").groups and not spec.entry("aux.bias").groups
    assert any("not read by the traced call" in n for n in spec.notes if isinstance(n, str))
    traced_both = _parse(CASES[0])[1]
    (name,) = traced_both.groups
    assert {m.key for m in traced_both.members(name)} >= {"aux.weight", "a.weight", "b.weight"}


def test_mask_token_joins_the_residual_stream_when_its_path_is_traced():
    _, spec, _ = _parse(next(c for c in CASES if c.name == "mask_token"))
    (residual,) = [n for n, g in spec.groups.items() if g.size == 8]
    assert "mask_token" in {m.key for m in spec.members(residual)}


def test_index_tensors_carry_no_group_of_their_own():
    for case in (c for c in CASES if c.name in ("index_select_buffer", "gather_hidden")):
        _, spec, _ = _parse(case)
        assert not spec.entry("idx").groups, case.name


def test_stacked_lstm_layers_permute_independently():
    _, spec, _ = _parse(next(c for c in CASES if c.name == "lstm_h_n_last"))
    owners = {n: {m.key for m in spec.members(n)} for n in spec.groups}
    assert sorted(len(o) for o in owners.values()) == [5, 5]
    layer0 = next(n for n, keys in owners.items() if "rnn.weight_hh_l0" in keys)
    assert "rnn.weight_hh_l1" not in owners[layer0] and "out.weight" not in owners[layer0]


def test_prelu_slope_moves_with_its_channel():
    _, spec, _ = _parse(next(c for c in CASES if c.name == "prelu_per_channel"))
    (name,) = spec.groups
    assert {(m.key, m.axis) for m in spec.members(name)} == {
        ("c1.weight", 0), ("c1.bias", 0), ("act.weight", 0), ("c2.weight", 1)}


def test_dense_moe_permutes_experts_with_the_router_rows():
    _, spec, _ = _parse(next(c for c in CASES if c.name == "moe_dense_stacked"))
    (experts,) = [n for n, g in spec.groups.items() if g.size == 4]
    assert {(m.key, m.axis) for m in spec.members(experts)} == {
        ("w1", 0), ("w2", 0), ("router.weight", 0), ("router.bias", 0)}


def test_shape_only_use_warns_about_nothing():
    _, _, messages = _parse(next(c for c in CASES if c.name == "shape_only_use"))
    assert not [m for m in messages if "bessel" in m]


@pytest.mark.parametrize("op", [
    pytest.param(lambda h: h[torch.nonzero(h[:, 0] > 0).squeeze(-1)], id="nonzero"),
    pytest.param(lambda h: h[torch.where(h[:, 0] > 0)[0]], id="where-mask"),
    pytest.param(lambda h: h[h[:, 0] > 0], id="boolean-mask"),
])
def test_data_dependent_shapes_end_in_trace_error(op):
    model = _seeded(lambda: Sandwich(lambda m, h: op(h)))()
    with pytest.raises(TraceError, match="data-dependent|torch.export could not trace"):
        ws.parse(model, (X,))


def test_verification_sees_a_wrong_rule_behind_layerscale():
    """A spec that is right for the relu branch, checked on the flipped branch: at the given
    weights (gamma 1e-6) the branch is invisible in float32; re-drawn weights expose it
    (and the float64 recheck then sees it at the given weights too)."""
    right = _seeded(LayerScaleBlock)().float()
    spec = ws.parse(right, (X.float(),))
    wrong = LayerScaleBlock(flip=True).float().eval()
    wrong.load_state_dict(right.state_dict())
    hidden = next(n for n, g in spec.groups.items() if g.size == 12)
    g = spec.random_element(torch.Generator().manual_seed(0))
    sd = wrong.state_dict()
    at_init = _rel(_outputs(wrong, spec.apply(sd, g), (((X.float(),), {}),)), _outputs(wrong, sd, (((X.float(),), {}),)))
    assert at_init < 1e-4  # the old one-draw check at the given weights passes
    with pytest.raises(SpecVerificationError) as err:
        verify(wrong, spec.with_status(False), (X.float(),))
    assert err.value.group == hidden
