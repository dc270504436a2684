"""Activation matching: planted recovery through the traced group positions, and its errors."""
from __future__ import annotations

import pytest
import torch

from weightspace.align import activation_matching
from weightspace.align.activations import GroupActivations
from weightspace.errors import AlignError

from .models import parsed_model, state


@pytest.mark.parametrize("name", ["mlp", "resnet_blocks", "transformer_block", "mha_block"])
def test_recovers_planted_permutation(name):
    model, inputs, result = parsed_model(name)
    spec = result.spec
    a = state(model)
    planted = spec.random_element(torch.Generator().manual_seed(11))
    g = activation_matching(model, a, spec.apply(a, planted), [inputs], parsed=result)
    inverse = planted.inverse()
    assert {n: torch.equal(g.perms[n], inverse.perms[n]) for n in spec.groups} == {n: True for n in spec.groups}


def test_sites_reach_every_group_and_match_the_node_values():
    model, inputs, result = parsed_model("transformer_block")
    acts = GroupActivations(model, result)
    assert acts.unreached == ()
    values = acts(state(model), inputs)
    for site in acts.sites:
        assert tuple(values[site.node].shape) == site.shape
    heads = [s for s in acts.sites if s.dims_of("attn.heads") and s.dims_of("attn.head_dim")]
    assert heads  # q/k values carry both factors of the head axis


def test_batches_of_another_shape_are_refused():
    model, inputs, result = parsed_model("mlp")
    a = state(model)
    (x,) = inputs
    with pytest.raises(AlignError, match="batch shapes"):
        activation_matching(model, a, a, [x, x[:-1]], parsed=result)
    with pytest.raises(AlignError, match="batch shapes"):
        activation_matching(model, a, a, [x, x[:-1]])
