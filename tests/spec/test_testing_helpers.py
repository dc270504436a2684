"""weightspace.testing: the checks pass on symmetric functions and fail, with a useful message, otherwise."""
from __future__ import annotations

import pytest
import torch

from weightspace.errors import SpecError
from weightspace.spec import Entry, Factor, Group, WeightSpec
from weightspace.testing import (
    assert_equivariant,
    assert_invariant,
    assert_negative_control,
    random_attention_spec,
    random_cnn_spec,
    random_mlp_spec,
    random_weights,
    single_axis_spec,
)

SPECS = {
    "mlp": random_mlp_spec([3, 4, 5, 2], activation="tanh"),
    "cnn": random_cnn_spec([2, 3, 4], 3, 4, 5, activation="relu", batchnorm=True),
    "attention": random_attention_spec(4, 2, 3),
}


def elementwise_tanh(w: dict) -> dict:
    return {k: torch.tanh(v) if v.is_floating_point() else v for k, v in w.items()}


def mlp_forward(w: dict) -> torch.Tensor:
    """The MLP of SPECS["mlp"] on a fixed input batch, per weight sample: (B, 6, 2)."""
    h = torch.linspace(-1, 1, 18, dtype=w["layers.0.weight"].dtype).reshape(6, 3)
    for i in range(3):
        h = torch.einsum("...ni,...oi->...no", h, w[f"layers.{i}.weight"]) + w[f"layers.{i}.bias"].unsqueeze(-2)
        h = torch.tanh(h) if i < 2 else h
    return h


@pytest.mark.parametrize("name", sorted(SPECS))
def test_elementwise_map_is_equivariant(name):
    assert assert_equivariant(elementwise_tanh, SPECS[name]) < 1e-12


@pytest.mark.parametrize("batch_dims", [0, 1, 2])
def test_batch_dims(batch_dims):
    seen = []

    def fn(w):
        seen.append(w["layers.0.weight"].shape)
        return elementwise_tanh(w)

    assert_equivariant(fn, SPECS["mlp"], batch_dims=batch_dims)
    assert seen[0] == (2,) * batch_dims + (4, 3)


def test_extra_symmetries():
    relu_spec = random_mlp_spec([3, 4, 2], activation="relu")
    assert_equivariant(elementwise_tanh, SPECS["mlp"], extra=True)
    assert_equivariant(lambda w: {k: torch.relu(v) for k, v in w.items()}, relu_spec, extra=True)
    with pytest.raises(AssertionError, match="h1"):
        assert_equivariant(elementwise_tanh, relu_spec, extra=True)


def test_not_equivariant_names_key_group_and_axis():
    def shift_rows(w):
        out = dict(w)
        out["layers.0.weight"] = w["layers.0.weight"] + torch.arange(4.0, dtype=torch.float64)[:, None]
        return out

    with pytest.raises(AssertionError) as info:
        assert_equivariant(shift_rows, SPECS["mlp"])
    message = str(info.value)
    assert "'layers.0.weight'" in message
    assert "group 'h1'" in message and "axis 0" in message
    assert "differs by up to" in message
    assert "'h2'" not in message


def test_mixing_samples_is_caught_by_per_sample_elements():
    assert_equivariant(elementwise_tanh, SPECS["mlp"])
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(lambda w: {k: v - v.mean(0) for k, v in w.items()}, SPECS["mlp"])


def test_output_spec_with_other_keys():
    spec_out = WeightSpec({"hidden": Entry("hidden", (4,), ((Factor("h1", 4),),))}, {"h1": Group("h1", 4)})

    def pooled(w):
        return {"hidden": w["layers.0.bias"] + w["layers.1.weight"].sum(-2)}

    assert_equivariant(pooled, SPECS["mlp"], spec_out)
    with pytest.raises(AssertionError, match="'hidden'"):
        assert_equivariant(lambda w: {"hidden": w["layers.0.bias"] + w["layers.1.weight"][..., 0, :]}, SPECS["mlp"], spec_out)


def test_inputs_are_cast_to_float64():
    w = random_weights(SPECS["mlp"], torch.Generator().manual_seed(3), (2,))
    dtypes = []

    def fn(x):
        dtypes.append(x["layers.0.weight"].dtype)
        return x

    assert_equivariant(fn, SPECS["mlp"], inputs=w)
    assert set(dtypes) == {torch.float64}


def test_invariant():
    total = lambda w: sum(v.flatten(1).sum(-1) for v in w.values() if v.is_floating_point())  # noqa: E731
    assert_invariant(total, SPECS["cnn"])
    assert_invariant(mlp_forward, SPECS["mlp"], extra=True)
    with pytest.raises(AssertionError) as info:
        assert_invariant(lambda w: w["layers.0.weight"][..., 0, 0], SPECS["mlp"])
    message = str(info.value)
    assert "not invariant" in message and "'output'" in message and "group 'h1'" in message


def test_invariant_dict_output_names_the_key():
    fn = lambda w: {"ok": w["layers.0.bias"].sum(-1), "bad": w["layers.0.bias"][..., 1]}  # noqa: E731
    with pytest.raises(AssertionError, match="'bad'"):
        assert_invariant(fn, SPECS["mlp"])


def test_negative_control_on_invariant_functions():
    assert assert_negative_control(mlp_forward, SPECS["mlp"]) > 1e-3
    assert assert_negative_control(lambda w: w["layers.0.weight"][..., 0, 0], SPECS["mlp"]) > 0
    total = lambda w: sum(v.sum() for v in w.values())  # noqa: E731
    with pytest.raises(AssertionError, match="negative control"):
        assert_negative_control(total, SPECS["mlp"])


def test_negative_control_on_equivariant_functions():
    spec = SPECS["mlp"]
    coupled = lambda w: {"layers.0.bias": w["layers.0.bias"] + w["layers.1.weight"].sum(-2)}  # noqa: E731
    assert_equivariant(coupled, spec)
    assert assert_negative_control(coupled, spec, spec, key="layers.0.bias") > 0
    with pytest.raises(AssertionError, match="'layers.0.bias'"):
        assert_negative_control(elementwise_tanh, spec, spec, key="layers.0.bias")


def test_negative_control_choices():
    spec = SPECS["attention"]
    ranks = torch.arange(6.0, dtype=torch.float64)[:, None]
    row_order = lambda w: (w["attn.v.weight"] * ranks).sum((-1, -2))  # noqa: E731
    assert assert_negative_control(row_order, spec, key="attn.v.weight", group="heads") > 0
    assert assert_negative_control(row_order, spec, key="attn.v.weight", group="head_dim") > 0
    with pytest.raises(AssertionError, match="'attn.v.bias'"):
        assert_negative_control(row_order, spec, key="attn.v.bias")
    with pytest.raises(SpecError, match="nope"):
        assert_negative_control(elementwise_tanh, spec, key="attn.v.weight", group="nope")
    with pytest.raises(ValueError, match="no axis"):
        assert_negative_control(elementwise_tanh, random_mlp_spec([2, 1, 2]))


def test_single_axis_spec_permutes_one_factor_only():
    spec = SPECS["attention"]
    member = spec.members("head_dim")[0]
    lone = single_axis_spec(spec, member)
    assert list(lone.entries) == [member.key]
    assert [m.key for m in lone.members("head_dim")] == [member.key]
    assert lone.entries[member.key].axes[member.axis][0].group is None


def test_default_generator_is_reproducible():
    fn = lambda w: {k: v + 1e-3 * torch.arange(v.shape[-1], dtype=v.dtype) for k, v in w.items()}  # noqa: E731
    messages = []
    for _ in range(2):
        with pytest.raises(AssertionError) as info:
            assert_equivariant(fn, SPECS["mlp"])
        messages.append(str(info.value))
    assert messages[0] == messages[1]
