"""Malformed specs and mismatched state dicts raise named errors that say what is wrong."""
from __future__ import annotations

import json

import pytest
import torch

from weightspace.errors import KeyMismatchError, ShapeMismatchError, SpecError
from weightspace.spec import Entry, ExtraAction, Factor, Group, GroupElement, WeightSpec
from weightspace.testing import random_mlp_spec, random_weights


def _entry(key: str, *factors: tuple[str | None, int]) -> Entry:
    """A 1-d entry whose only axis has the given factors."""
    size = 1
    for _, n in factors:
        size *= n
    return Entry(key, (size,), (tuple(Factor(g, n) for g, n in factors),))


def test_unknown_group_in_an_entry():
    with pytest.raises(SpecError, match=r"'a'.*unknown group 'nope'"):
        WeightSpec({"a": _entry("a", ("nope", 2))}, {})


def test_factor_size_differs_from_group_size():
    with pytest.raises(SpecError, match=r"'a'.*size 3.*size 2"):
        WeightSpec({"a": _entry("a", ("g", 3))}, {"g": Group("g", 2)})


def test_alias_to_unknown_key():
    with pytest.raises(SpecError, match=r"'tied'.*'missing'"):
        WeightSpec({"a": _entry("a", ("g", 2))}, {"g": Group("g", 2)}, aliases={"tied": "missing"})


def test_entry_stored_under_another_key():
    with pytest.raises(SpecError, match="'b'"):
        WeightSpec({"a": _entry("b", (None, 2))}, {})


def test_extra_action_on_a_non_member():
    group = Group("g", 2, extra=("sign",), extra_action=(ExtraAction("b", 0, 1),))
    with pytest.raises(SpecError, match=r"'g'.*'b'"):
        WeightSpec({"a": _entry("a", ("g", 2)), "b": _entry("b", (None, 2))}, {"g": group})


def test_unknown_provenance():
    with pytest.raises(SpecError, match="provenance"):
        WeightSpec({}, {}, provenance="guessed")


GOOD = random_mlp_spec([2, 3, 1]).to_dict()


def _edited(**changes) -> str:
    d = json.loads(json.dumps(GOOD))
    d.update(changes)
    return json.dumps(d)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("{not json", id="bad-json"),
        pytest.param(_edited(format="something.else"), id="wrong-format-tag"),
        pytest.param(json.dumps({k: v for k, v in GOOD.items() if k != "format"}), id="missing-format-tag"),
        pytest.param(_edited(version=99), id="unsupported-version"),
        pytest.param(json.dumps({k: v for k, v in GOOD.items() if k != "entries"}), id="missing-entries"),
        pytest.param(
            _edited(entries=[{"key": "a", "shape": [3], "axes": [[[None, 2]]]}]), id="factors-not-multiplying"
        ),
        pytest.param(_edited(entries=[{"key": "a", "shape": [2], "axes": [[["h9", 2]]]}]), id="unknown-group"),
        pytest.param(_edited(groups=[{"name": "h1", "size": 3, "kind": "bogus"}]), id="unknown-group-kind"),
        pytest.param(_edited(entries=[{"key": "a", "shape": [3], "axes": [[["h1"]]]}]), id="factor-without-size"),
        pytest.param(
            _edited(entries=[{"key": "a", "shape": [3], "axes": [["h3"]]}], groups=[{"name": "h", "size": 3}]),
            id="factor-as-string",
        ),
        pytest.param(
            _edited(entries=[{"key": "a", "shape": [2.0], "axes": [[[None, 2]]]}], groups=[]),
            id="float-shape",
        ),
        pytest.param(_edited(aliases={"x": "nowhere"}), id="alias-to-unknown"),
        pytest.param(
            "[]",
            id="not-an-object",
        ),
        pytest.param(
            _edited(aliases=[]),
            id="aliases-not-an-object",
        ),
    ],
)
def test_malformed_json_raises_spec_error(text):
    with pytest.raises(SpecError):
        WeightSpec.from_json(text)


def test_entry_with_factors_not_multiplying_raises_spec_error():
    with pytest.raises(SpecError):
        Entry("a", (3,), ((Factor(None, 2),),))


def test_apply_with_an_unknown_key_names_it():
    spec = random_mlp_spec([2, 3, 1])
    w = random_weights(spec)
    w["extra.weight"] = torch.zeros(2)
    with pytest.raises(KeyMismatchError, match="extra.weight") as info:
        spec.apply(w, spec.identity())
    assert info.value.unexpected == ["extra.weight"]


def test_apply_with_a_wrong_shape_names_the_key():
    spec = random_mlp_spec([2, 3, 1])
    w = random_weights(spec)
    w["layers.0.bias"] = torch.zeros(4)
    with pytest.raises(ShapeMismatchError, match="layers.0.bias") as info:
        spec.apply(w, spec.random_element())
    assert info.value.key == "layers.0.bias"
    assert info.value.expected == (3,) and info.value.got == (4,)


def test_apply_with_missing_batch_dims_is_a_shape_mismatch():
    spec = random_mlp_spec([2, 3, 1])
    with pytest.raises(ShapeMismatchError, match="layers.0.weight"):
        spec.apply({"layers.0.weight": torch.zeros(3, 2)}, spec.identity(), batch_dims=1, strict=False)


def test_element_naming_an_unknown_group():
    spec = random_mlp_spec([2, 3, 1])
    with pytest.raises(SpecError, match="h7"):
        spec.apply(random_weights(spec), GroupElement({"h7": torch.arange(3)}))


def test_element_with_float_permutation():
    with pytest.raises(TypeError, match="h1"):
        GroupElement({"h1": torch.arange(3.0)})


def test_check_and_lookups_name_what_is_missing():
    spec = random_mlp_spec([2, 3, 1])
    w = random_weights(spec)
    del w["layers.1.bias"]
    with pytest.raises(KeyMismatchError, match="layers.1.bias"):
        spec.check(w)
    with pytest.raises(KeyMismatchError, match="nothing"):
        spec.entry("nothing")
    with pytest.raises(SpecError, match="h9"):
        spec.members("h9")


def test_apply_with_missing_keys_names_them_unless_partial():
    spec = random_mlp_spec([2, 3, 1])
    sd = random_weights(spec)
    partial = {k: v for k, v in sd.items() if k != "layers.1.weight"}
    with pytest.raises(KeyMismatchError, match="layers.1.weight") as info:
        spec.apply(partial, spec.identity())
    assert info.value.missing == ["layers.1.weight"] and not info.value.unexpected
    assert set(spec.apply(partial, spec.identity(), strict=False)) == set(partial)
