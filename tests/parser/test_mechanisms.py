"""Parser catalogue, one model per mechanism of issue 18: the spec is a true symmetry on
every call path the model has (other call paths included), checked here, outside the
library's own verification, with weights re-drawn at O(1) scale in float64; the groups
found are the expected multiset of sizes; a negative control (one tensor permuted alone)
moves the outputs. The checks live in `catalogue`; mixture-of-experts routing has its own
catalogue, `test_moe_routing`.
"""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import weightspace as ws
from weightspace.errors import ShapeGuardWarning, SpecVerificationError, TraceError
from weightspace.parser.verify import verify

from .catalogue import (Case, check_each_group_alone, check_symmetry, outputs, parse_case, redraw, rel_change, seeded,
                        x64)


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


class ShapeBranch(nn.Module):
    """A branch on the batch size: large batches run `a`, small ones `b`."""

    def __init__(self):
        super().__init__()
        self.inp, self.a, self.b, self.out = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        return self.out(torch.tanh(self.a(h) if x.shape[0] > 3 else self.b(h)))


class OneHotTokens(nn.Module):
    """Token ids (a model input) one-hot encoded and multiplied into a table: the classes are
    fixed positions (the table's rows fixed), its columns a hidden group."""

    def __init__(self):
        super().__init__()
        self.table, self.head = nn.Parameter(torch.randn(10, 8)), nn.Linear(8, 3)

    def forward(self, ids):
        return self.head(torch.tanh(F.one_hot(ids, 10).to(self.table.dtype) @ self.table))


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


X = x64(5, 4)
MASK = torch.tensor([[True, False, False], [False, True, False]])
CASES = [
    Case("aux_head", seeded(AuxHead), (((X,), {}), ((X,), {"aux": True})), [8]),
    Case("mask_token", seeded(MaskToken), (((x64(2, 3, 6),), {}), ((x64(2, 3, 6),), {"mask": MASK})), [8, 12]),
    Case("layerscale", seeded(LayerScaleBlock), (((X,), {}),), [8, 12]),
    Case("roll_flat", seeded(lambda: Sandwich(lambda m, h: torch.roll(torch.relu(h), 1))), (((X,), {}),), []),
    Case("roll_batch", seeded(lambda: Sandwich(lambda m, h: torch.roll(torch.relu(h), 1, 0))), (((X,), {}),), [8]),
    Case("index_select_buffer", seeded(lambda: _with_index(
        Sandwich(lambda m, h: torch.relu(h).index_select(0, m.idx)), "idx", torch.tensor([2, 0, 1, 4, 3]))),
        (((X,), {}),), [8]),
    Case("gather_hidden", seeded(lambda: _with_index(
        Sandwich(lambda m, h: torch.relu(h).gather(1, m.idx)), "idx", torch.randint(0, 8, (5, 8)))),
        (((X,), {}),), []),
    Case("gather_batch", seeded(lambda: _with_index(
        Sandwich(lambda m, h: torch.tanh(h).gather(0, m.idx)), "idx", torch.randint(0, 5, (3, 8)))),
        (((X,), {}),), [8]),
    Case("weight_norm_old", seeded(lambda: WeightNormPositional(False)), (((x64(2, 7, 5),), {}),), [2, 4, 12]),
    Case("weight_norm_parametrized", seeded(lambda: WeightNormPositional(True)), (((x64(2, 7, 5),), {}),), [2, 4, 12]),
    Case("prelu_per_channel", seeded(lambda: PReLUNet(True)), (((x64(2, 3, 6, 6),), {}),), [6]),
    Case("prelu_shared", seeded(lambda: PReLUNet(False)), (((x64(2, 3, 6, 6),), {}),), [6]),
    Case("channel_shuffle", seeded(ShuffleNet), (((x64(2, 3, 4, 4),), {}),), [2, 4]),
    Case("lstm_cell", seeded(CellNet), (((x64(3, 2, 4),), {}),), [6]),
    Case("gru_cell", seeded(lambda: CellNet("gru")), (((x64(3, 2, 4),), {}),), [6]),
    Case("rnn_cell", seeded(lambda: CellNet("rnn")), (((x64(3, 2, 4),), {}),), [6]),
    Case("lstm_h_n_last", seeded(lambda: StackedLSTM("last")), (((x64(3, 2, 4),), {}),), [6, 6]),
    Case("lstm_h_n_all", seeded(lambda: StackedLSTM("all")), (((x64(3, 2, 4),), {}),), [6]),
    Case("shape_only_use", seeded(ShapeOnly), (((X,), {}),), [8]),
    Case("one_hot_tokens", seeded(OneHotTokens), (((torch.tensor([[1, 4, 9], [0, 4, 2]]),), {}),), [8]),
    Case("max_values_hidden", seeded(lambda: Sandwich(lambda m, h: torch.relu(h) * h.max(-1, keepdim=True).values)),
         (((X,), {}),), [8]),
    Case("sort_values_hidden", seeded(lambda: Sandwich(lambda m, h: torch.relu(h).sort(-1).values)), (((X,), {}),), [8]),
    Case("bart_encoder_decoder", seeded(BartLogits), (((torch.arange(10).reshape(2, 5) % 40,
                                                        torch.arange(8).reshape(2, 4) + 20), {}),),
         [2, 2, 2, 8, 8, 8, 8, 8, 8, 16, 24, 24]),
    Case("cat_unequal", seeded(UnequalCat), (((X,), {}),), [4]),
    Case("cat_coprime", seeded(lambda: UnequalCat((3, 5))), (((X,), {}),), []),
    Case("split_unequal_qkv", seeded(UnequalQKV), (((x64(2, 5, 3),), {}),), [4, 6]),
    Case("shape_branch_both_traced", seeded(ShapeBranch), (((X,), {}), ((X[:2],), {})), [8, 8]),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_spec_is_a_symmetry_on_every_call_path(case: Case):
    check_symmetry(case)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES if c.expected])
def test_negative_control_one_tensor_alone(case: Case):
    """Each group, applied to one of its parameter tensors alone, moves the outputs."""
    check_each_group_alone(case)


# ---------------------------------------------------------------------------- mechanism details
def test_unread_entries_are_fixed_and_named():
    """Traced on one call only, the aux head is not read: its entries are fixed, a warning names them."""
    model = seeded(AuxHead)()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = ws.parse(model, (X,))
    messages = " ".join(str(w.message) for w in caught)
    assert "aux.weight" in messages and "other_calls" in messages
    assert not spec.entry("aux.weight").groups and not spec.entry("aux.bias").groups
    assert any("not read by the traced call" in n for n in spec.notes if isinstance(n, str))
    traced_both = parse_case(CASES[0])[1]
    (name,) = traced_both.groups
    assert {m.key for m in traced_both.members(name)} >= {"aux.weight", "a.weight", "b.weight"}


def test_mask_token_joins_the_residual_stream_when_its_path_is_traced():
    _, spec, _ = parse_case(next(c for c in CASES if c.name == "mask_token"))
    (residual,) = [n for n, g in spec.groups.items() if g.size == 8]
    assert "mask_token" in {m.key for m in spec.members(residual)}


def test_index_tensors_carry_no_group_of_their_own():
    for case in (c for c in CASES if c.name in ("index_select_buffer", "gather_hidden")):
        _, spec, _ = parse_case(case)
        assert not spec.entry("idx").groups, case.name


def test_stacked_lstm_layers_permute_independently():
    _, spec, _ = parse_case(next(c for c in CASES if c.name == "lstm_h_n_last"))
    owners = {n: {m.key for m in spec.members(n)} for n in spec.groups}
    assert sorted(len(o) for o in owners.values()) == [5, 5]
    layer0 = next(n for n, keys in owners.items() if "rnn.weight_hh_l0" in keys)
    assert "rnn.weight_hh_l1" not in owners[layer0] and "out.weight" not in owners[layer0]


def test_prelu_slope_moves_with_its_channel():
    _, spec, _ = parse_case(next(c for c in CASES if c.name == "prelu_per_channel"))
    (name,) = spec.groups
    assert {(m.key, m.axis) for m in spec.members(name)} == {
        ("c1.weight", 0), ("c1.bias", 0), ("act.weight", 0), ("c2.weight", 1)}


def test_shape_only_use_warns_about_nothing():
    _, _, messages = parse_case(next(c for c in CASES if c.name == "shape_only_use"))
    assert not [m for m in messages if "bessel" in m]


def _parse_recording(model, args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = ws.parse(model, args, **kwargs)
    return spec, [w for w in caught if issubclass(w.category, ShapeGuardWarning)]


def test_shape_branch_is_warned_about_with_check_shapes():
    """Traced on 5 rows only, the spec says which shapes it was traced on; check_shapes=True
    reads the branch condition torch.export records and warns, naming it."""
    spec, shape_warnings = _parse_recording(seeded(ShapeBranch)(), (X,))
    assert not shape_warnings
    assert any("input shapes args[0] (5, 4)" in n for n in spec.notes)
    spec, shape_warnings = _parse_recording(seeded(ShapeBranch)(), (X,), check_shapes=True)
    (warning,) = shape_warnings
    assert "args[0].shape[0] > 3" in str(warning.message) and "other_calls" in str(warning.message)
    assert "args[0].shape[1] == 4" in str(warning.message)  # pinned, listed after the condition
    assert any("args[0].shape[0] > 3" in n for n in spec.notes)


def test_shape_branch_traced_once_is_not_a_symmetry_of_the_other_branch():
    """Why the warning matters: a's group, found on the 5-row call, moves the outputs of a
    2-row call (where b runs); traced on both (the catalogue case), b joins it."""
    model = seeded(ShapeBranch)()
    spec = ws.parse(model, (X,))
    assert sorted(g.size for g in spec.groups.values()) == [8, 8]
    (name,) = [n for n in spec.groups if ("a.weight", 0) in {(m.key, m.axis) for m in spec.members(n)}]
    sd = redraw(model, 0)
    shift = ws.GroupElement({name: torch.roll(torch.arange(8), 1)})
    small = (((X[:2],), {}),)
    assert rel_change(outputs(model, spec.apply(sd, shift, strict=False), small), outputs(model, sd, small)) > 1e-3
    both = parse_case(next(c for c in CASES if c.name == "shape_branch_both_traced"))[1]
    (joined,) = [n for n in both.groups if ("a.weight", 0) in {(m.key, m.axis) for m in both.members(n)}]
    assert {("b.weight", 0), ("out.weight", 1)} <= {(m.key, m.axis) for m in both.members(joined)}


def test_no_shape_branch_no_warning():
    """Without a branch on a shape, check_shapes finds only the pinned in-feature width: a note, no warning."""
    spec, shape_warnings = _parse_recording(seeded(lambda: Sandwich(lambda m, h: torch.relu(h)))(), (X,),
                                            check_shapes=True)
    assert not shape_warnings
    assert any("pinned to their traced sizes: args[0].shape[1] == 4" in n for n in spec.notes)


def test_guards_of_a_dimension_marked_dynamic_are_warned_about():
    """An input dimension the caller marked dynamic makes the ordinary export record the guard."""
    x = X.clone()
    torch._dynamo.mark_dynamic(x, 0)
    _, shape_warnings = _parse_recording(seeded(ShapeBranch)(), (x,))
    (warning,) = shape_warnings
    assert "args[0].shape[0] > 3" in str(warning.message)


def test_index_put_with_a_boolean_mask_freezes_with_a_warning():
    """`h[h > 1] = 0.5` is an index_put whose one mask index spans several axes: frozen, named."""
    def clip(m, h):
        h = torch.relu(h).clone()
        h[h > 1.0] = 0.5
        return h

    spec, messages = parse_case(Case("mask_put", seeded(lambda: Sandwich(clip)), (((X,), {}),), []))[1:]
    assert not spec.groups and any("index_put" in m and "boolean-mask" in m for m in messages)


@pytest.mark.parametrize("op", [
    pytest.param(lambda h: h[torch.nonzero(h[:, 0] > 0).squeeze(-1)], id="nonzero"),
    pytest.param(lambda h: h[torch.where(h[:, 0] > 0)[0]], id="where-mask"),
    pytest.param(lambda h: h[h[:, 0] > 0], id="boolean-mask"),
])
def test_data_dependent_shapes_end_in_trace_error(op):
    model = seeded(lambda: Sandwich(lambda m, h: op(h)))()
    with pytest.raises(TraceError, match="data-dependent|torch.export could not trace"):
        ws.parse(model, (X,))


def test_verification_sees_a_wrong_rule_behind_layerscale():
    """A spec that is right for the relu branch, checked on the flipped branch: at the given
    weights (gamma 1e-6) the branch is invisible in float32; re-drawn weights expose it
    (and the float64 recheck then sees it at the given weights too)."""
    right = seeded(LayerScaleBlock)().float()
    spec = ws.parse(right, (X.float(),))
    wrong = LayerScaleBlock(flip=True).float().eval()
    wrong.load_state_dict(right.state_dict())
    hidden = next(n for n, g in spec.groups.items() if g.size == 12)
    g = spec.random_element(torch.Generator().manual_seed(0))
    sd = wrong.state_dict()
    at_init = rel_change(outputs(wrong, spec.apply(sd, g), (((X.float(),), {}),)), outputs(wrong, sd, (((X.float(),), {}),)))
    assert at_init < 1e-4  # the old one-draw check at the given weights passes
    with pytest.raises(SpecVerificationError) as err:
        verify(wrong, spec.with_status(False), (X.float(),))
    assert err.value.group == hidden
