"""Aligned B computes exactly B's function (eval and train mode) on every kind of model."""
from __future__ import annotations

import pytest
import torch

from weightspace.align import activation_matching, weight_matching
from weightspace.align.identity import output_change

from .models import noisy, parsed, parsed_model, snapshot, state, unchanged

MODELS = ["mlp", "cnn_bn", "resnet_blocks", "transformer_block", "hf_gpt2", "hf_bert_cls"]


@pytest.mark.parametrize("name", MODELS)
def test_weight_matched_b_has_the_same_outputs(name):
    model, inputs, spec = parsed(name)
    a = state(model)
    b = noisy(spec.apply(a, spec.random_element(torch.Generator().manual_seed(5))), 0.5, seed=7)
    g = weight_matching(spec, a, b).element
    aligned = spec.apply(b, g)
    assert any(not torch.equal(aligned[k], b[k]) for k in b)  # the check below is not vacuous
    assert output_change(model, b, aligned, inputs, train=False) < 1e-5
    assert output_change(model, b, aligned, inputs, train=True) < 1e-5
    # negative control: moving one tensor alone by the same element changes the function
    key = next(m.key for n in spec.groups for m in spec.members(n) if not spec.entries[m.key].buffer)
    alone = dict(b)
    alone.update(spec.apply({key: b[key]}, g, strict=False))
    if not torch.equal(alone[key], b[key]):
        assert output_change(model, b, alone, inputs) > 1e-4


@pytest.mark.parametrize("name", ["mlp", "resnet_blocks", "transformer_block"])
def test_activation_matched_b_has_the_same_outputs(name):
    model, inputs, result = parsed_model(name)
    spec = result.spec
    a = state(model)
    b = noisy(spec.apply(a, spec.random_element(torch.Generator().manual_seed(6))), 0.3, seed=8)
    b_copy = snapshot(b)
    before = snapshot(state(model))
    g = activation_matching(model, a, b, [inputs], parsed=result)
    assert output_change(model, b, spec.apply(b, g), inputs) < 1e-5
    assert unchanged(b, b_copy) and unchanged(state(model), before)
