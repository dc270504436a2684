"""ZipIt! and CCA merging on any spec: planted answers (permuted and linearly transformed copies),
merge/unmerge shapes on MLP, CNN+BN and residual specs, partial zipping, bad arguments."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import weightspace as ws
from weightspace.align.identity import output_change
from weightspace.errors import ConfigError
from weightspace.merge import zip_models
from weightspace.merge.cca import cca_transform
from weightspace.merge.combine import combine
from weightspace.merge.zip import forward_order
from weightspace.merge.zipit import zip_clusters

from tests.align.models import parsed_model, snapshot, state, unchanged

ARCHS = ["mlp", "cnn_bn", "resnet_blocks"]


def _data(inputs, n=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(inputs[0].shape, generator=gen),) for _ in range(n)]


def _permuted(spec, sd, seed):
    return spec.apply(sd, spec.random_element(torch.Generator().manual_seed(seed)))


def _close(a, b, tol=1e-5):
    return all(torch.allclose(a[k].double(), b[k].double(), atol=tol) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("name", ARCHS + ["elman_rnn"])  # elman: one group on both axes of a recurrent weight
@pytest.mark.parametrize("method", ["zipit", "cca"])
def test_a_model_zipped_with_a_permuted_copy_of_itself_returns_it(name, method):
    model, inputs, parsed = parsed_model(name)
    a = state(model)
    b = _permuted(parsed.spec, a, 5)
    b_copy = snapshot(b)
    data = _data(inputs)
    naive = combine("linear", [a, b])
    assert output_change(model, a, naive, inputs) > 1e-2  # negative control: unmatched averaging moves
    result = zip_models([a, b], model, data, method=method, parsed=parsed, reset_bn=False)
    assert output_change(model, a, result.state_dict, inputs) < 1e-5
    assert _close(result.state_dict, a, 1e-4)  # model 0's unit order is kept
    assert unchanged(b, b_copy)


@pytest.mark.parametrize("method", ["zipit", "cca"])
def test_three_models_zip_back_to_the_one_they_permute(method):
    model, inputs, parsed = parsed_model("mlp")
    a = state(model)
    models = [a, _permuted(parsed.spec, a, 1), _permuted(parsed.spec, a, 2)]
    result = zip_models(models, model, _data(inputs), method=method, parsed=parsed)
    assert output_change(model, a, result.state_dict, inputs) < 1e-5
    assert all(g.merge.shape == (g.size, 3 * g.size) for g in result.merges.values())


def _linear_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 6), nn.Linear(6, 5), nn.Linear(5, 3)).eval()  # full-rank hidden units
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return net, (x,), ws.parse_model(net, (x,))


def test_cca_undoes_an_invertible_linear_map_of_a_hidden_layer_and_zipit_cannot():
    net, inputs, parsed = _linear_net()
    a = state(net)
    q = torch.randn(6, 6, generator=torch.Generator().manual_seed(2)) + 3 * torch.eye(6)
    b = dict(a)
    b["0.weight"], b["0.bias"], b["1.weight"] = q @ a["0.weight"], q @ a["0.bias"], a["1.weight"] @ torch.linalg.inv(q)
    b = _permuted(parsed.spec, b, 3)
    assert output_change(net, a, b, inputs) < 1e-4  # B computes A's function
    data = [(inputs[0],)]
    cca = zip_models([a, b], net, data, method="cca", parsed=parsed)
    assert output_change(net, a, cca.state_dict, inputs) < 1e-4
    zipped = zip_models([a, b], net, data, method="zipit", parsed=parsed)
    assert output_change(net, a, zipped.state_dict, inputs) > 1e-2  # a permutation-style match cannot


def test_cca_transform_recovers_a_planted_linear_relation():
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(500, 6, generator=gen, dtype=torch.float64)
    q = torch.randn(6, 6, generator=gen, dtype=torch.float64) + 2 * torch.eye(6, dtype=torch.float64)
    xk = x0 @ q
    c = lambda u, v: (u - u.mean(0)).T @ (v - v.mean(0)) / len(u)  # noqa: E731
    t = cca_transform(c(x0, x0), c(xk, xk), c(x0, xk), reg=1e-10)
    assert torch.allclose(xk @ t, x0, atol=1e-6)
    assert torch.allclose(t, torch.linalg.inv(q), atol=1e-6)


def test_zip_clusters_pair_within_a_model_when_that_correlates_most():
    # two models of two units: model 0's units 0 and 1 are near-duplicates, as are model 1's units 2 and 3
    corr = torch.tensor([[1.0, 0.9, 0.2, 0.1], [0.9, 1.0, 0.3, 0.2], [0.2, 0.3, 1.0, 0.8], [0.1, 0.2, 0.8, 1.0]])
    assert zip_clusters(corr, 2) == [[0, 1], [2, 3]]
    assert zip_clusters(corr, 2, same_model=False) == [[0, 3], [1, 2]]  # greedy across: (1,2) first, then (0,3)


@pytest.mark.parametrize("name", ARCHS)
def test_merge_and_unmerge_matrices_fit_every_group_and_partial_zipping_widens_the_rest(name):
    model, inputs, parsed = parsed_model(name)
    spec = parsed.spec
    a = state(model)
    b = _permuted(spec, a, 7)
    data = _data(inputs)
    full = zip_models([a, b], model, data, parsed=parsed, reset_bn=False)
    assert set(full.merges) == set(spec.groups) and set(full.zipped) == set(spec.groups)
    for n, g in full.merges.items():
        size = spec.groups[n].size
        assert g.merge.shape == (size, 2 * size) and g.unmerge.shape == (2 * size, size)
        assert torch.allclose(g.merge @ g.unmerge, torch.eye(size, dtype=torch.float64))
    order = forward_order(parsed)
    partial = zip_models([a, b], model, data, parsed=parsed, depth=1, reset_bn=False)
    assert partial.zipped == (order[0],)
    for n in order[1:]:
        assert partial.sizes[n] == 2 * spec.groups[n].size
    for key, entry in spec.entries.items():
        want = [1 for _ in entry.axes]
        for i, axis in enumerate(entry.axes):
            for f in axis:
                want[i] *= partial.sizes[f.group] if f.group else f.size
        assert tuple(partial.state_dict[key].shape) == tuple(want), key
    net = partial.module(model).eval()
    with torch.no_grad():
        assert torch.allclose(net(*inputs), model(*inputs), atol=1e-5)  # the two copies' heads agree


def test_partial_zipping_of_two_different_models_averages_their_outputs_at_depth_zero():
    model, inputs, parsed = parsed_model("mlp")
    a = state(model)
    b = {k: v + 0.3 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1)) for k, v in a.items()}
    ensemble = zip_models([a, b], model, _data(inputs), parsed=parsed, depth=0).module(model).eval()
    with torch.no_grad():
        want = (ws.align.modules.with_weights(model, a)(*inputs) + ws.align.modules.with_weights(model, b)(*inputs)) / 2
        assert torch.allclose(ensemble(*inputs), want, atol=1e-5)


def test_an_entry_whose_consuming_axis_is_unknown_is_refused():
    from weightspace.errors import AlignError
    from weightspace.merge.feature_maps import consumed_axes
    from weightspace.parser.roles import Role

    model, _, parsed = parsed_model("elman_rnn")
    entry = parsed.spec.entries["w_hh.weight"]
    assert consumed_axes("w_hh.weight", entry, parsed.roles["w_hh.weight"]) == {1}  # F.linear's input axis
    unknown = Role("w_hh.weight", "einsum", "operands", 0, (), None, ())
    with pytest.raises(AlignError, match="which axis consumes"):
        consumed_axes("w_hh.weight", entry, unknown)


def test_cca_without_enough_samples_is_refused():
    from weightspace.errors import AlignError

    model, inputs, parsed = parsed_model("mlp")
    a = state(model)
    with pytest.raises(AlignError, match="samples"):
        zip_models([a, _permuted(parsed.spec, a, 1)], model, [inputs], method="cca", parsed=parsed)


def test_bad_arguments_are_named():
    model, inputs, parsed = parsed_model("mlp")
    a = state(model)
    data = _data(inputs, 2)
    with pytest.raises(ConfigError, match="unknown zip method"):
        zip_models([a, a], model, data, method="permute", parsed=parsed)
    with pytest.raises(ConfigError, match="at least two"):
        zip_models([a], model, data, parsed=parsed)
    with pytest.raises(ConfigError, match="depth"):
        zip_models([a, a], model, data, parsed=parsed, depth=9)
    with pytest.raises(ConfigError, match="unknown groups"):
        zip_models([a, a], model, data, parsed=parsed, unzipped=["nope"])
    with pytest.raises(ConfigError, match="batch"):
        zip_models([a, a], model, [], parsed=parsed)
    with pytest.raises(ConfigError, match="zip_models"):
        ws.merge.merge_models([a, a], "zipit")
