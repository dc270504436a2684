"""`ws.parse` beyond the catalog: soundness on ops that break the symmetry, unknown ops,
strict mode, export failures, odd outputs, and verification that catches a wrong spec."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import weightspace as ws
from weightspace.errors import SpecVerificationError, TraceError, UnknownOpError
from weightspace.parser.verify import verify
from weightspace.spec import WeightSpec


class Sandwich(nn.Module):
    """Linear(4, 8) -> op on the hidden axis -> Linear(8, 3): the hidden group lives or dies by `op`."""

    def __init__(self, op):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(4, 8)
        self.b = nn.Linear(8, 3)
        self.op = op

    def forward(self, x):
        return self.b(self.op(self.a(x)))


X = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))


def _quiet_parse(model, inputs, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = ws.parse(model, inputs, **kw)
    return spec, [str(w.message) for w in caught]


def test_pointwise_activation_keeps_the_hidden_group():
    spec, _ = _quiet_parse(Sandwich(torch.relu), (X,))
    assert [(g.size, g.kind) for g in spec.groups.values()] == [(8, "neuron")]
    (name,) = spec.groups
    members = {(m.key, m.axis) for m in spec.members(name)}
    assert members == {("a.weight", 0), ("a.bias", 0), ("b.weight", 1)}
    assert spec.entry("a.weight").axes[1][0].group is None  # model input: fixed
    assert spec.entry("b.weight").axes[0][0].group is None  # model output: fixed


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(lambda h: h.cumsum(-1), id="cumsum"),
        pytest.param(lambda h: h.roll(1, -1), id="roll"),
        pytest.param(lambda h: h.flip(-1), id="flip"),
        pytest.param(lambda h: h * torch.arange(8.0), id="position-weighted"),
        pytest.param(lambda h: torch.cat([2 * h[:, :3], h[:, 3:]], -1), id="slice-scale"),
    ],
)
def test_ops_that_break_the_symmetry_never_yield_a_false_group(op):
    """Soundness: whatever the parser keeps must hold; every one of these ops breaks the
    full hidden permutation group, so a group of size 8 would be a false claim."""
    model = Sandwich(op)
    spec, _ = _quiet_parse(model, (X,))
    assert all(g.size != 8 for g in spec.groups.values()), spec.groups
    sd = model.state_dict()
    with torch.no_grad():
        ref = model(X)
        for seed in range(3):
            g = spec.random_element(torch.Generator().manual_seed(seed))
            out = torch.func.functional_call(model, spec.apply(sd, g), (X,))
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_sort_values_keep_the_producers_permutation_only():
    """Sorted values are invariant to the order of what was sorted: a's units still permute
    (rows and bias), while b's columns read slots in value order and stay fixed."""
    model = Sandwich(lambda h: h.sort(-1).values)
    spec, _ = _quiet_parse(model, (X,))
    (name,) = spec.groups
    assert {(m.key, m.axis) for m in spec.members(name)} == {("a.weight", 0), ("a.bias", 0)}
    sd = model.state_dict()
    with torch.no_grad():
        ref = model(X)
        for seed in range(3):
            g = spec.random_element(torch.Generator().manual_seed(seed))
            torch.testing.assert_close(torch.func.functional_call(model, spec.apply(sd, g), (X,)), ref, rtol=1e-5, atol=1e-6)


def test_unknown_op_freezes_its_axes_with_a_warning_naming_it():
    spec, messages = _quiet_parse(Sandwich(torch.special.i0), (X,))
    assert not spec.groups
    assert any("special_i0" in m and "frozen" in m for m in messages), messages
    assert any("special_i0" in n for n in spec.notes)
    assert any("special_i0" in f.reason for f in spec.frozen)


def test_strict_mode_raises_on_unknown_op():
    with pytest.raises(UnknownOpError, match="special_i0"):
        ws.parse(Sandwich(torch.special.i0), (X,), strict=True)


def test_unknown_op_elsewhere_leaves_other_groups_alone():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.a, self.b, self.c = nn.Linear(4, 6), nn.Linear(6, 8), nn.Linear(8, 3)

        def forward(self, x):
            return self.c(torch.special.i0(self.b(torch.tanh(self.a(x)))))

    spec, _ = _quiet_parse(Two(), (X,))
    assert [g.size for g in spec.groups.values()] == [6]
    assert spec.verified


def test_data_dependent_control_flow_gives_a_trace_error():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)

        def forward(self, x):
            h = self.a(x)
            if h.sum() > 0:
                return h
            return -h

    with pytest.raises(TraceError, match="Branchy|export"):
        ws.parse(Branchy(), (X,))


def test_structured_outputs_are_parsed_leaf_by_leaf():
    """A model returning a dict with a tuple inside (like a cache) parses; every leaf is an output."""

    class DictOut(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 3)

        def forward(self, x):
            h = torch.relu(self.a(x))
            return {"logits": self.b(h), "cache": (h.sum(-1), x * 2)}

    spec, _ = _quiet_parse(DictOut(), (X,))
    assert [g.size for g in spec.groups.values()] == [8]

    class LeakyOut(DictOut):
        def forward(self, x):
            h = torch.relu(self.a(x))
            return {"logits": self.b(h), "cache": (h,)}  # hidden units are an output: fixed

    spec, _ = _quiet_parse(LeakyOut(), (X,))
    assert not spec.groups


def test_keyword_inputs():
    class Kw(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 3)

        def forward(self, x, *, scale: torch.Tensor):
            return self.b(torch.tanh(self.a(x))) * scale

    spec = ws.parse(Kw(), (X,), {"scale": torch.tensor(2.0)})
    assert [g.size for g in spec.groups.values()] == [8]
    assert spec.verified


def _with_false_group(spec: WeightSpec) -> WeightSpec:
    """`spec` plus a made-up group that permutes b.weight's input axis alone."""
    data = spec.to_dict()
    data["groups"].append({"name": "made_up", "size": 8, "kind": "neuron", "extra": [], "extra_action": []})
    for entry in data["entries"]:
        if entry["key"] == "b.weight":
            entry["axes"][1] = [["made_up", 8]]
    return WeightSpec.from_dict(data)


def test_verification_names_the_group_that_changes_outputs():
    model = Sandwich(torch.tanh)
    spec = ws.parse(model, (X,), verify=False)
    (true_group,) = spec.groups
    spec = _without_group(spec, true_group)
    wrong = _with_false_group(spec)
    with pytest.raises(SpecVerificationError, match="made_up") as info:
        verify(model, wrong, (X,))
    assert info.value.group == "made_up"
    assert info.value.max_diff > info.value.tol


def _without_group(spec: WeightSpec, name: str) -> WeightSpec:
    data = spec.to_dict()
    data["groups"] = [g for g in data["groups"] if g["name"] != name]
    for entry in data["entries"]:
        entry["axes"] = [[[None if f[0] == name else f[0], f[1]] for f in axis] for axis in entry["axes"]]
    return WeightSpec.from_dict(data)


def test_verification_catches_a_wrong_extra_symmetry_by_dropping_it():
    """ReLU allows positive scaling, not sign flips: a spec claiming signs for a ReLU
    layer loses that claim in verification (the permutation group itself stays)."""
    model = Sandwich(torch.relu)
    spec = ws.parse(model, (X,), verify=False, extras=False)
    data = spec.to_dict()
    (group,) = data["groups"]
    group["extra"] = ["sign"]
    group["extra_action"] = [["a.weight", 0, 1], ["a.bias", 0, 1], ["b.weight", 1, 1]]
    claimed = WeightSpec.from_dict(data)
    checked, record = verify(model, claimed, (X,))
    assert checked.verified is True
    assert not any(g.extra for g in checked.groups.values())
    assert [g.size for g in checked.groups.values()] == [8]
