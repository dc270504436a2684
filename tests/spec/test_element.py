"""GroupElement's own operations: restrict, batch helpers, JSON and the tensor form zoos store."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from weightspace.errors import SpecError
from weightspace.spec import GroupElement
from weightspace.testing import random_mlp_spec, random_weights
from weightspace.testing.strategies import specs

SETTINGS = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2**31 - 1)


def _equal(g: GroupElement, h: GroupElement) -> bool:
    same = lambda a, b: set(a) == set(b) and all(torch.equal(a[n], b[n]) for n in a)  # noqa: E731
    return same(g.perms, h.perms) and same(g.signs, h.signs) and same(g.scales, h.scales)


@pytest.fixture
def spec():
    return random_mlp_spec([3, 5, 4, 2], activation="tanh")


def test_restrict_acts_like_the_one_group_alone(spec):
    gen = torch.Generator().manual_seed(0)
    x = random_weights(spec, gen, dtype=torch.float64)
    g = spec.random_element(gen, extra=True)
    name = sorted(spec.groups)[0]
    only = g.restrict([name])
    assert set(only.perms) == set(only.signs) == {name}
    others = g.restrict(set(spec.groups) - {name})
    assert name not in others.perms and name not in others.signs
    y = spec.apply(spec.apply(x, only), others)
    z = spec.apply(x, g)
    assert all(torch.allclose(y[k], z[k], rtol=0, atol=1e-12) for k in x)
    assert not all(torch.equal(spec.apply(x, only)[k], z[k]) for k in x)  # the other group did move something


def test_batch_helpers(spec):
    gen = torch.Generator().manual_seed(1)
    g = spec.random_element(gen, extra=True, batch_shape=(4,))
    assert g.batch_shape == (4,) and spec.random_element(gen).batch_shape == ()
    assert g.unsqueeze(-1).batch_shape == (4, 1) and g.unsqueeze(0).batch_shape == (1, 4)
    assert _equal(GroupElement.stack([g.index(i) for i in range(4)]), g)
    assert _equal(g.index(slice(1, 3)), GroupElement.stack([g.index(1), g.index(2)]))
    one = g.index(2)
    wide = one.expand(3)
    assert wide.batch_shape == (3,) and all(_equal(wide.index(i), one) for i in range(3))
    x = random_weights(spec, gen, (4, 2), dtype=torch.float64)
    per_channel = spec.apply(x, g.unsqueeze(-1).expand(4, 2), batch_dims=2)
    broadcast = spec.apply(x, g.unsqueeze(-1), batch_dims=2)
    assert all(torch.equal(per_channel[k], broadcast[k]) for k in x)
    with pytest.raises(SpecError, match="out of range"):
        g.unsqueeze(3)
    with pytest.raises(SpecError, match="batched"):
        one.index(0)
    with pytest.raises(SpecError, match="different groups"):
        GroupElement.stack([one, one.restrict([])])


@SETTINGS
@given(specs(), seeds, st.sampled_from([(), (3,)]), st.booleans())
def test_json_and_tensor_forms_round_trip_exactly(spec, seed, batch_shape, extra):
    g = spec.random_element(torch.Generator().manual_seed(seed), extra=extra, batch_shape=batch_shape)
    assert _equal(GroupElement.from_json(g.to_json()), g)
    tensors = g.to_tensors("group_element/")
    assert all(k.startswith("group_element/") for k in tensors)
    assert _equal(GroupElement.from_tensors({**tensors, "0.weight": torch.zeros(2)}, "group_element/"), g)


@pytest.mark.parametrize("text", ["[1, 2]", '{"signs": {}}', '{"perms": {"a": "x"}}', "{not json"])
def test_malformed_stored_elements_raise_spec_error(text):
    with pytest.raises(SpecError):
        GroupElement.from_json(text)


def test_malformed_tensor_form_names_the_key():
    with pytest.raises(SpecError, match="'g/rotation/a'"):
        GroupElement.from_tensors({"g/rotation/a": torch.arange(3)}, "g/")
