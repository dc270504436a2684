"""Properties of the group action over random MLP, CNN and attention specs."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from weightspace.errors import SpecError
from weightspace.spec import FrozenAxis, GroupElement, WeightSpec
from weightspace.testing import random_cnn_spec, random_mlp_spec, random_weights
from weightspace.testing.strategies import specs

SETTINGS = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2**31 - 1)
batch = st.sampled_from([(), (3,)])


def _draw(spec: WeightSpec, seed: int, batch_shape: tuple):
    """A seeded generator, float64 random weights with `batch_shape`, and their batch_dims."""
    gen = torch.Generator().manual_seed(seed)
    x = random_weights(spec, gen, batch_shape, dtype=torch.float64)
    return gen, x, len(batch_shape)


def _same(a: dict, b: dict, exact: bool) -> bool:
    if set(a) != set(b):
        return False
    if exact:
        return all(torch.equal(a[k], b[k]) for k in a)
    return all(torch.allclose(a[k].double(), b[k].double(), rtol=1e-5, atol=1e-8) for k in a)


def _same_element(g: GroupElement, h: GroupElement) -> bool:
    if set(g.perms) != set(h.perms) or not all(torch.equal(g.perms[n], h.perms[n]) for n in g.perms):
        return False
    return _same(g.signs, h.signs, exact=False) and _same(g.scales, h.scales, exact=False)


@SETTINGS
@given(specs(), seeds, batch, st.booleans())
def test_inverse_undoes_apply(spec, seed, batch_shape, extra):
    gen, x, bd = _draw(spec, seed, batch_shape)
    g = spec.random_element(gen, extra=extra, batch_shape=batch_shape)
    exact = not (g.signs or g.scales)
    assert _same(spec.apply(spec.apply(x, g, bd), g.inverse(), bd), x, exact)
    assert _same(spec.apply(spec.apply(x, g.inverse(), bd), g, bd), x, exact)


@SETTINGS
@given(specs(), seeds, batch)
def test_identity_changes_nothing(spec, seed, batch_shape):
    _, x, bd = _draw(spec, seed, batch_shape)
    assert _same(spec.apply(x, spec.identity(), bd), x, exact=True)


@SETTINGS
@given(specs(), seeds, batch, st.booleans())
def test_compose_matches_successive_application(spec, seed, batch_shape, extra):
    gen, x, bd = _draw(spec, seed, batch_shape)
    g, h = (spec.random_element(gen, extra=extra, batch_shape=batch_shape) for _ in range(2))
    exact = not (g.signs or g.scales)
    assert _same(spec.apply(spec.apply(x, h, bd), g, bd), spec.apply(x, g.compose(h), bd), exact)


@SETTINGS
@given(specs(), seeds, batch, st.booleans())
def test_compose_is_associative(spec, seed, batch_shape, extra):
    gen, x, bd = _draw(spec, seed, batch_shape)
    a, b, c = (spec.random_element(gen, extra=extra, batch_shape=batch_shape) for _ in range(3))
    left, right = a.compose(b).compose(c), a.compose(b.compose(c))
    assert _same_element(left, right)
    assert _same(spec.apply(x, left, bd), spec.apply(x, right, bd), exact=not extra)


@SETTINGS
@given(specs(), seeds, batch, st.booleans())
def test_inverse_of_compose_is_reversed_compose_of_inverses(spec, seed, batch_shape, extra):
    gen, _, _ = _draw(spec, seed, batch_shape)
    g, h = (spec.random_element(gen, extra=extra, batch_shape=batch_shape) for _ in range(2))
    assert _same_element(g.compose(h).inverse(), h.inverse().compose(g.inverse()))
    e = g.compose(g.inverse())
    assert all(torch.equal(p, torch.arange(p.shape[-1]).expand_as(p)) for p in e.perms.values())
    assert all(torch.allclose(m, torch.ones_like(m)) for m in (*e.signs.values(), *e.scales.values()))


@SETTINGS
@given(specs(), st.booleans())
def test_json_round_trip_is_exact(spec, decorate):
    if decorate:
        first = next(iter(spec.entries))
        spec = replace(
            spec,
            aliases={"tied." + first: first},
            frozen=(FrozenAxis(first, 0, "model input"),),
            provenance="traced",
            verified=True,
        )
    text = spec.to_json()
    again = WeightSpec.from_json(text)
    assert again == spec
    assert again.to_json() == text
    assert WeightSpec.from_json(spec.to_json(indent=2)) == spec


@SETTINGS
@given(specs(), seeds, batch, st.booleans())
def test_apply_never_mutates_its_input(spec, seed, batch_shape, extra):
    gen, x, bd = _draw(spec, seed, batch_shape)
    before = {k: v.clone() for k, v in x.items()}
    g = spec.random_element(gen, extra=extra, batch_shape=batch_shape)
    before_g = {n: p.clone() for n, p in g.perms.items()}
    y = spec.apply(x, g, bd)
    g.inverse()
    g.compose(g)
    assert _same(x, before, exact=True)
    assert _same(dict(g.perms), before_g, exact=True)
    assert all(y[k].data_ptr() != x[k].data_ptr() or x[k].numel() == 0 for k in x)


@SETTINGS
@given(specs(), seeds, st.booleans())
def test_batched_element_equals_per_sample_application(spec, seed, extra):
    gen, x, bd = _draw(spec, seed, (3,))
    g = spec.random_element(gen, extra=extra, batch_shape=(3,))
    y = spec.apply(x, g, batch_dims=1)
    for b in range(3):
        y_b = spec.apply({k: v[b] for k, v in x.items()}, g.index(b))
        assert _same(y_b, {k: v[b] for k, v in y.items()}, exact=not extra)


@SETTINGS
@given(specs(), seeds, batch)
def test_random_element_without_extra_has_no_signs_or_scales(spec, seed, batch_shape):
    gen = torch.Generator().manual_seed(seed)
    g = spec.random_element(gen, extra=False, batch_shape=batch_shape)
    assert not g.signs and not g.scales
    assert set(g.perms) == set(spec.groups)
    for name, p in g.perms.items():
        assert p.shape == (*batch_shape, spec.groups[name].size)
        assert torch.equal(p.sort(dim=-1).values, torch.arange(p.shape[-1]).expand_as(p))
    g = spec.random_element(gen, extra=True, batch_shape=batch_shape)
    assert set(g.signs) == {n for n, grp in spec.groups.items() if "sign" in grp.extra}
    assert set(g.scales) == {n for n, grp in spec.groups.items() if "scale" in grp.extra}
    assert all(bool((s.abs() == 1).all()) for s in g.signs.values())
    assert all(bool((s > 0).all()) for s in g.scales.values())


ACT = {"tanh": torch.tanh, "sin": torch.sin, "relu": torch.relu, "leaky_relu": F.leaky_relu}


def _mlp_forward(w: dict, inputs: torch.Tensor, n_layers: int, act) -> torch.Tensor:
    h = inputs
    for i in range(n_layers):
        h = F.linear(h, w[f"layers.{i}.weight"], w.get(f"layers.{i}.bias"))
        if i + 1 < n_layers:
            h = act(h)
    return h


@SETTINGS
@given(st.lists(st.integers(1, 6), min_size=2, max_size=5), st.sampled_from(sorted(ACT)), st.booleans(), seeds)
def test_extra_symmetries_keep_the_mlp_function(widths, activation, bias, seed):
    spec = random_mlp_spec(widths, bias=bias, activation=activation)
    gen, w, _ = _draw(spec, seed, ())
    inputs = torch.randn(7, widths[0], generator=gen, dtype=torch.float64)
    g = spec.random_element(gen, extra=True)
    if len(widths) > 2:
        assert g.signs or g.scales
    before = _mlp_forward(w, inputs, len(widths) - 1, ACT[activation])
    after = _mlp_forward(spec.apply(w, g), inputs, len(widths) - 1, ACT[activation])
    torch.testing.assert_close(after, before, rtol=1e-9, atol=1e-10)


def _cnn_forward(w: dict, inputs: torch.Tensor, n_convs: int) -> torch.Tensor:
    h = inputs
    for i in range(n_convs):
        h = F.conv2d(h, w[f"convs.{i}.weight"], w.get(f"convs.{i}.bias"), padding="same")
        if f"norms.{i}.weight" in w:
            norm = [w[f"norms.{i}.{name}"] for name in ("running_mean", "running_var", "weight", "bias")]
            h = F.batch_norm(h, *norm)
        h = torch.relu(h)
    return F.linear(h.flatten(1), w["head.weight"], w.get("head.bias"))


@SETTINGS
@given(
    st.lists(st.integers(1, 4), min_size=2, max_size=4),
    st.sampled_from([1, 3]),
    st.integers(1, 4),
    st.booleans(),
    st.booleans(),
    seeds,
)
def test_cnn_spec_symmetries_keep_the_function(channels, kernel, hw, bias, batchnorm, seed):
    spec = random_cnn_spec(channels, kernel, hw, 3, bias=bias, activation="relu", batchnorm=batchnorm)
    gen, w, _ = _draw(spec, seed, ())
    inputs = torch.randn(5, channels[0], 1, hw, generator=gen, dtype=torch.float64)
    g = spec.random_element(gen, extra=True)
    before = _cnn_forward(w, inputs, len(channels) - 1)
    after = _cnn_forward(spec.apply(w, g), inputs, len(channels) - 1)
    torch.testing.assert_close(after, before, rtol=1e-9, atol=1e-10)


def test_alias_is_transformed_like_its_target():
    base = random_mlp_spec([2, 3, 2], activation="relu")
    spec = replace(base, aliases={"tied.weight": "layers.1.weight"})
    w = random_weights(spec, torch.Generator().manual_seed(0), dtype=torch.float64)
    w["tied.weight"] = w["layers.1.weight"].clone()
    g = spec.random_element(torch.Generator().manual_seed(1), extra=True)
    y = spec.apply(w, g)
    assert torch.equal(y["tied.weight"], y["layers.1.weight"])


def test_random_weights_shapes_and_buffers():
    spec = random_cnn_spec([2, 3], 3, 4, 5, batchnorm=True)
    w = random_weights(spec, torch.Generator().manual_seed(0), (2,))
    assert set(w) == set(spec.entries)
    spec.check(w, batch_dims=1)
    assert w["norms.0.num_batches_tracked"].dtype == torch.long
    assert bool((w["norms.0.running_var"] > 0).all())
    assert w["convs.0.weight"].dtype == torch.float32


@pytest.mark.parametrize(
    "spec", [random_mlp_spec([2, 3, 4, 1], activation="tanh"), random_cnn_spec([1, 2, 3], 3, 4, 2)]
)
def test_hand_written_specs_round_trip(spec):
    assert WeightSpec.from_json(spec.to_json()) == spec
    assert spec.provenance == "manual"


def test_signs_are_not_applied_where_the_spec_records_only_scale():
    spec = random_mlp_spec([2, 3, 2], activation="relu")
    w = random_weights(spec, torch.Generator().manual_seed(0), dtype=torch.float64)
    g = GroupElement({}, signs={"h1": torch.tensor([-1.0, 1.0, 1.0])})
    try:
        y = spec.apply(w, g)
    except SpecError:
        return
    assert _same(y, w, exact=True)
