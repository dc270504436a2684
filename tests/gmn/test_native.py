"""Fused edge kernels (`weightspace.nn.gmn.native`): native == torch path == today's path for
outputs and every gradient (inputs and parameters) in float64, on graphs with tied maxima and
nodes without edges; 1 == 2 threads; float32 within rounding of float64; when the kernels
apply; a failed build warns once and runs the torch path."""
from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
import torch.utils.cpp_extension

from tasks.benchmarks.gmn import reference_classifier
from tests.gmn.cases import KINDS, as_batch, classifier, equivariant, set_native, structure_of
from weightspace.nn.gmn import EdgeMPNNLayer, RelationalTransformerLayer, edge_widths, native
from weightspace.nn.gmn.encoders import EdgeEncoder
from weightspace.testing import random_weights

TOL = dict(rtol=1e-10, atol=1e-12)
pytestmark = pytest.mark.skipif(native.library() is None, reason="the fused kernels do not build here")


def _graph(dtype=torch.float64, hidden=16, nodes=12, edges=400, seed=0):
    """Node and edge features and an edge index where node `nodes - 1` has no edges and edges
    10..19 repeat edges 0..9 (same endpoints and features: tied maxima)."""
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, nodes - 1, (2, edges), generator=gen)
    edge_index[:, 10:20] = edge_index[:, :10]
    h = torch.randn(nodes, hidden, generator=gen, dtype=dtype)
    e = torch.randn(edges, hidden, generator=gen, dtype=dtype)
    e[10:20] = e[:10]
    return h.requires_grad_(), e.requires_grad_(), edge_index


def _run(layer, h, e, edge_index):
    """Outputs and the gradients of a random linear loss w.r.t. h, e and every parameter."""
    out = layer(h, e, edge_index)
    gen = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.dtype)).sum() for o in out)
    return [o.detach() for o in out], torch.autograd.grad(loss, [h, e, *layer.parameters()])


def _assert_same(a, b, **tol):
    for x, y in zip([*a[0], *a[1]], [*b[0], *b[1]]):
        torch.testing.assert_close(x, y, **(tol or TOL))


def _layers():
    torch.manual_seed(0)
    return [EdgeMPNNLayer(16, aggregators=("mean", "max", "std", "sum")).double(),
            EdgeMPNNLayer(16).double(),
            RelationalTransformerLayer(16, heads=4).double(),
            RelationalTransformerLayer(16, heads=1, ffn=48).double()]


@pytest.mark.parametrize("index", range(4))
def test_native_layer_equals_the_torch_path(index):
    layer = _layers()[index]
    h, e, edge_index = _graph()
    assert native.supported(layer, e)
    fused = _run(set_native(layer, True), h, e, edge_index)
    _assert_same(fused, _run(set_native(layer, False), h, e, edge_index))


def test_native_max_shares_the_gradient_of_tied_maxima():
    """All messages into a node equal: the max's gradient splits evenly, as the torch path's."""
    torch.manual_seed(0)
    layer = EdgeMPNNLayer(16, aggregators=("max",)).double()
    h, e, _ = _graph()
    edge_index = torch.tensor([[0, 0, 0, 1], [2, 2, 2, 2]])
    e = e[:1].detach().repeat(4, 1).requires_grad_()
    _assert_same(_run(set_native(layer, True), h, e, edge_index), _run(set_native(layer, False), h, e, edge_index))


def _model_grads(model, fn):
    out = fn()
    params = list(model.parameters())
    grads = torch.autograd.grad(out.square().sum(), params, allow_unused=True)
    return [out.detach()], [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


@pytest.mark.parametrize("kind", KINDS)
def test_native_models_equal_the_torch_path_and_todays_path(kind):
    spec, structure = structure_of("cnn_bn")
    batch = as_batch(structure, random_weights(spec, torch.Generator().manual_seed(0), (2,), torch.float64))
    model = classifier(structure, kind)
    fused = _model_grads(model, lambda: set_native(model, True)(batch))
    _assert_same(fused, _model_grads(model, lambda: set_native(model, False)(batch)))
    _assert_same(fused, _model_grads(model, lambda: reference_classifier(model, batch)))
    head = equivariant(structure, kind)  # the edge head too
    fused = _model_grads(head, lambda: set_native(head, True)(batch)[0])
    _assert_same(fused, _model_grads(head, lambda: set_native(head, False)(batch)[0]))


@pytest.mark.parametrize("index", [0, 2])
def test_two_threads_equal_one(index):
    layer = _layers()[index]
    h, e, edge_index = _graph(edges=3000, nodes=40)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _run(layer, h, e, edge_index)
        torch.set_num_threads(2)
        two = _run(layer, h, e, edge_index)
    finally:
        torch.set_num_threads(threads)
    _assert_same(one, two)


@pytest.mark.parametrize("index", range(4))
def test_float32_kernels_are_within_rounding_of_float64(index):
    layer = _layers()[index]
    h, e, edge_index = _graph()
    exact = _run(set_native(layer, False), h, e, edge_index)
    layer = set_native(layer.float(), True)
    got = _run(layer, h.detach().float().requires_grad_(), e.detach().float().requires_grad_(), edge_index)
    for x, y in zip([*got[0], *got[1]], [*exact[0], *exact[1]]):
        torch.testing.assert_close(x.double(), y, rtol=0, atol=2e-5 * max(1.0, float(y.abs().max())))


def test_supported_only_where_the_kernels_apply(monkeypatch):
    torch.manual_seed(0)
    layer = EdgeMPNNLayer(16).double()
    e = torch.zeros(5, 16, dtype=torch.float64)
    assert native.supported(layer, e, (layer.edge,))
    assert not native.supported(EdgeMPNNLayer(8), torch.zeros(5, 8), (layer.edge,))  # 8 floats: half a tile
    assert not native.supported(layer, e.float(), (layer.edge,))  # parameters in another dtype
    assert not native.supported(layer, e.to(torch.int64), ())
    dropping = EdgeMPNNLayer(16, dropout=0.1).double()
    assert not native.supported(dropping, e, (dropping.edge,))
    assert native.supported(dropping.eval(), e, (dropping.edge,))
    layer.native = False
    assert not native.supported(layer, e)
    layer.native = True
    monkeypatch.setenv(native.ENV_VAR, "0")
    assert not native.supported(layer, e)


def test_a_failed_build_warns_once_and_runs_the_torch_path(monkeypatch):
    layer = _layers()[0]
    h, e, edge_index = _graph()
    expected = _run(set_native(layer, False), h, e, edge_index)
    set_native(layer, True)

    def broken(*args, **kwargs):
        raise OSError("no compiler")

    monkeypatch.setattr(torch.utils.cpp_extension, "load_inline", broken)
    native.library.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="could not be built"):
            got = _run(layer, h, e, edge_index)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _run(layer, h, e, edge_index)
    finally:
        monkeypatch.undo()
        native.library.cache_clear()
    _assert_same(got, expected)
    assert native.library() is not None


def _encoder_case(dtype=torch.float64, normalize=True, value_scale=1.0):
    """An edge encoder and a two-graph batch of the cnn_bn structure (widths 1 and 9, and width-0 edges)."""
    spec, structure = structure_of("cnn_bn")
    weights = random_weights(spec, torch.Generator().manual_seed(0), (2,), dtype)
    batch = as_batch(structure, {k: v * value_scale for k, v in weights.items()})
    torch.manual_seed(0)
    return EdgeEncoder(16, edge_widths(structure), normalize=normalize).to(dtype), batch


def _encoded(encoder, batch, native_on):
    encoder.native = native_on
    out = encoder(batch)
    gen = torch.Generator().manual_seed(1)
    loss = (out * torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.dtype)).sum()
    return [out.detach()], torch.autograd.grad(loss, list(encoder.parameters()), allow_unused=True)


@pytest.mark.parametrize("normalize", [True, False])
def test_native_encoder_equals_the_torch_path(normalize):
    encoder, batch = _encoder_case(normalize=normalize)
    assert native.encode_supported(encoder, batch.edge_val)
    assert (batch.edge_width == 0).any() and {1, 9} <= set(batch.edge_width.tolist())
    fused, torch_path = _encoded(encoder, batch, True), _encoded(encoder, batch, False)
    assert all(g is not None for g in fused[1])
    _assert_same(fused, torch_path)


def test_native_encoder_two_threads_equal_one():
    encoder, batch = _encoder_case()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _encoded(encoder, batch, True)
        torch.set_num_threads(2)
        two = _encoded(encoder, batch, True)
    finally:
        torch.set_num_threads(threads)
    _assert_same(one, two)


@pytest.mark.parametrize("value_scale", [1.0, 3000.0])
def test_float32_encoder_is_within_rounding_of_float64(value_scale):
    """Float sin/cos run vectorized up to |angle| 8192 and through std::sin/cos beyond
    (unnormalized values x 3000 give angles past 10^4, whose float rounding a * 6e-8 the
    tolerance allows)."""
    encoder, batch = _encoder_case(normalize=False, value_scale=value_scale)
    exact = _encoded(encoder, batch, False)
    angle = max(float(batch.edge_val.abs().max() * f.freqs.abs().sum(1).max() * f.angular)
                for f in encoder.fourier.values())
    assert (angle > 1e4) == (value_scale > 1)
    got = _encoded(encoder.float(), dataclasses.replace(batch, edge_val=batch.edge_val.float()), True)
    for x, y in zip([*got[0], *got[1]], [*exact[0], *exact[1]]):
        atol = max(1.0, float(y.abs().max())) * (2e-5 + angle * 6e-8)
        torch.testing.assert_close(x.double(), y, rtol=0, atol=atol)


def test_values_needing_a_gradient_take_the_torch_path():
    encoder, batch = _encoder_case()
    values = batch.edge_val.clone().requires_grad_()
    assert not native.encode_supported(encoder, values)
    assert native.encode_supported(encoder, batch.edge_val)
    encoder.native = False
    assert not native.encode_supported(encoder, batch.edge_val)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_native_class_rms_equals_the_torch_one(dtype):
    _, batch = _encoder_case(dtype)
    exact = EdgeEncoder.class_rms(batch)
    assert (batch.class_width == 0).any()  # classes without values keep rms 1
    torch.testing.assert_close(native.class_rms(batch), exact, **(TOL if dtype == torch.float64 else {}))
