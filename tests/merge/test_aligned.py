"""Merging in the aligned frame: permuted copies merge back to the model, alignment keeps the function,
BatchNorm reset and REPAIR are weightspace.align's."""
from __future__ import annotations

import pytest
import torch

from weightspace import align
from weightspace.align.identity import output_change
from weightspace.errors import ConfigError
from weightspace.merge import merge_models
from weightspace.merge.combine import combine

from tests.align.digits import batches, digits, mlp, cnn, train
from tests.align.models import noisy, parsed, snapshot, state, unchanged


def _close(a, b, tol=1e-5):
    return all(torch.allclose(a[k].double(), b[k].double(), atol=tol) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("name", ["mlp", "cnn_bn", "resnet_blocks"])
@pytest.mark.parametrize("method, options", [("linear", {}), ("slerp", {"t": 0.3})])
def test_a_model_merged_with_a_permuted_copy_of_itself_returns_it(name, method, options):
    model, _, spec = parsed(name)
    a = state(model)
    b = spec.apply(a, spec.random_element(torch.Generator().manual_seed(5)))
    b_copy = snapshot(b)
    naive = combine(method, [a, b], **options)
    assert not _close(naive, a, 1e-3)  # negative control: without alignment the merge moves
    result = merge_models([a, b], method, spec=spec, align="weight", **options)
    assert _close(result.state_dict, a)
    assert all(torch.equal(p, torch.arange(len(p))) for p in result.elements[0].perms.values())  # the anchor
    assert unchanged(b, b_copy)


@pytest.mark.parametrize("method, options", [
    ("task_arithmetic", {"weights": [0.5, 0.5]}), ("ties", {"density": 1.0}), ("model_stock", {}),
    ("dare", {"p": 0.0, "weights": [0.5, 0.5]}),
])
def test_task_vector_methods_on_a_fine_tune_and_its_permuted_copy_return_the_fine_tune(method, options):
    model, _, spec = parsed("mlp")
    base = state(model)
    tuned = noisy(base, 0.05, seed=1)
    copy = spec.apply(tuned, spec.random_element(torch.Generator().manual_seed(2)))
    result = merge_models([tuned, copy], method, base=base, spec=spec, align="weight", **options)
    assert _close(result.state_dict, tuned)
    naive = merge_models([tuned, copy], method, base=base, **options)
    assert not _close(naive.state_dict, tuned, 1e-3)


@pytest.fixture(scope="module")
def digits_pair():
    x, y, _, _ = digits()
    a, b = train(mlp, 1, epochs=3), train(mlp, 2, epochs=3)
    return a, b, batches(x, y, 200)


@pytest.mark.parametrize("how", ["weight", "activation", "ste"])
def test_every_alignment_leaves_each_models_function_unchanged(digits_pair, how):
    a, b, data = digits_pair
    import warnings

    import weightspace as ws

    x = data[0][0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        spec = ws.parse(a, (x[:60],))
    sd_a, sd_b = state(a), state(b)
    result = merge_models([sd_a, sd_b], "linear", spec=spec, align=how, model=a, batches=data)
    g = result.elements[1]
    moved = sum(int((p != torch.arange(len(p))).sum()) for p in g.perms.values())
    assert moved > 0  # the alignment did permute B
    assert output_change(a, sd_b, spec.apply(sd_b, g), (x,)) < 1e-5
    assert output_change(a, sd_b, spec.apply(snapshot(sd_b), spec.random_element(torch.Generator().manual_seed(0))), (x,)) < 1e-5
    assert output_change(a, sd_a, sd_b, (x,)) > 0.1  # negative control: another model's function differs


def test_batchnorm_reset_and_repair_are_the_align_functions():
    model, _, spec = parsed("cnn_bn")
    a = state(model)
    b = noisy(spec.apply(a, spec.random_element(torch.Generator().manual_seed(3))), 0.3, seed=4)
    x = torch.randn(32, *parsed("cnn_bn")[1][0].shape[1:], generator=torch.Generator().manual_seed(0))
    data = [(x,)]
    result = merge_models([a, b], "linear", spec=spec, align="weight", model=model, batches=data)
    assert result.postprocess == "reset_bn"
    aligned = spec.apply(b, result.elements[1])
    want = align.reset_batchnorm(model, combine("linear", [a, aligned]), data)
    assert not all(torch.equal(result.state_dict[k], combine("linear", [a, aligned])[k]) for k in want)
    assert all(torch.equal(result.state_dict[k], want[k]) for k in want)
    fixed = merge_models([a, b], "linear", spec=spec, align="weight", model=model, batches=data, repair=True)
    assert fixed.postprocess == "repair"
    want = align.repair(model, spec, a, aligned, 0.5, data)
    assert all(torch.equal(fixed.state_dict[k], want[k]) for k in want)
    with pytest.raises(ConfigError, match="repair"):
        merge_models([a, b], "slerp", spec=spec, model=model, batches=data, repair=True)


def test_alignment_arguments_are_checked():
    model, _, spec = parsed("mlp")
    a = state(model)
    with pytest.raises(ConfigError, match="spec"):
        merge_models([a, a], "linear", align="weight")
    with pytest.raises(ConfigError, match="template model"):
        merge_models([a, a], "linear", spec=spec, align="activation")
    with pytest.raises(ConfigError, match="unknown alignment"):
        merge_models([a, a], "linear", spec=spec, align="cca")
