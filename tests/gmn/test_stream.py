"""Edge streaming (`weightspace.nn.gmn.stream`, the torch path: fused kernels switched off):
chunked == unchunked == today's all-edges path, for outputs and parameter gradients in
float64, with chunk sizes that do and do not divide the edge count; the segment max against
torch's scatter_reduce; named errors."""
from __future__ import annotations

import pytest
import torch

from tasks.benchmarks.gmn import reference_classifier
from tests.gmn.cases import KINDS, as_batch, classifier, equivariant, set_native, structure_of
from weightspace.errors import GMNError
from weightspace.nn.gmn import EdgeMPNNLayer, GMNClassifier
from weightspace.nn.gmn.stream import auto_chunk_size, edge_chunks, finish_max, segment_max
from weightspace.testing import random_weights

WHOLE = 10**9  # one chunk: nothing streamed, nothing recomputed
TOL = dict(rtol=1e-10, atol=1e-12)


def _batch(name: str, graphs: int = 2):
    spec, structure = structure_of(name)
    return structure, as_batch(structure, random_weights(spec, torch.Generator().manual_seed(0), (graphs,), torch.float64))


def _value_and_grads(model, fn):
    out = fn()
    grads = torch.autograd.grad(out.square().sum(), list(model.parameters()), allow_unused=True)
    return out.detach(), [torch.zeros_like(p) if g is None else g for p, g in zip(model.parameters(), grads)]


def _assert_same(a, b):
    torch.testing.assert_close(a[0], b[0], **TOL)
    for x, y in zip(a[1], b[1]):
        torch.testing.assert_close(x, y, **TOL)


@pytest.mark.parametrize("kind", KINDS)
def test_chunked_classifier_equals_unchunked_and_todays_path(kind):
    structure, batch = _batch("mlp")
    assert batch.num_edges % 97 and batch.num_edges % 250
    whole = set_native(classifier(structure, kind, chunk_size=WHOLE), False)
    expected = _value_and_grads(whole, lambda: whole(batch))
    _assert_same(_value_and_grads(whole, lambda: reference_classifier(whole, batch)), expected)
    for size in (97, 250, batch.num_edges):
        model = set_native(classifier(structure, kind, chunk_size=size), False)
        assert len(edge_chunks(batch.num_edges, size, 16, torch.float64)) == -(-batch.num_edges // size)
        _assert_same(_value_and_grads(model, lambda: model(batch)), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_chunked_conv_graph_and_edge_head_equal_unchunked(kind):
    structure, batch = _batch("cnn_bn", graphs=1)
    whole, chunked = set_native(equivariant(structure, kind), False), set_native(equivariant(structure, kind), False)
    for m, size in ((whole, WHOLE), (chunked, 1000)):
        for module in m.modules():
            if hasattr(module, "chunk_size"):
                module.chunk_size = size
    assert batch.num_edges > 1000 and batch.num_edges % 1000
    _assert_same(_value_and_grads(chunked, lambda: chunked(batch)[0]), _value_and_grads(whole, lambda: whole(batch)[0]))


def test_layer_forward_chunk_size_overrides_the_constructor():
    gen = torch.Generator().manual_seed(0)
    h, e = torch.randn(9, 8, generator=gen, dtype=torch.float64), torch.randn(40, 8, generator=gen, dtype=torch.float64)
    edge_index = torch.randint(0, 8, (2, 40), generator=gen)  # node 8 has no edges
    torch.manual_seed(0)
    layer = set_native(EdgeMPNNLayer(8, aggregators=("mean", "max", "std", "sum"), chunk_size=WHOLE).double(), False)
    for size in (3, 7, 40):
        for a, b in zip(layer(h, e, edge_index, chunk_size=size), layer(h, e, edge_index)):
            torch.testing.assert_close(a, b, **TOL)


def test_segment_max_matches_scatter_reduce_with_ties_and_empty_rows():
    x = torch.tensor([[1.0, 2.0], [3.0, 2.0], [3.0, -1.0], [0.5, 0.5]], dtype=torch.float64, requires_grad=True)
    index = torch.tensor([0, 0, 0, 2])  # row 1 gets nothing; ties at row 0 in both columns
    got = finish_max(segment_max(x, index, 3))
    ref = torch.zeros(3, 2, dtype=torch.float64).scatter_reduce(
        0, index[:, None].expand(-1, 2), x, "amax", include_self=False)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    w = torch.randn(3, 2, dtype=torch.float64)
    (g_got,) = torch.autograd.grad((got * w).sum(), x)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), x)
    torch.testing.assert_close(g_got, g_ref, rtol=0, atol=1e-15)


def test_auto_chunk_size_follows_the_budget():
    assert auto_chunk_size(32, torch.float32, budget=24 * 32 * 4 * 5000) == 5000
    assert auto_chunk_size(32, torch.float64, budget=24 * 32 * 8 * 5000) == 5000
    assert auto_chunk_size(32, torch.float32, budget=1) == 1024


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_bad_chunk_size_is_a_named_error(bad):
    with pytest.raises(GMNError, match="chunk_size"):
        GMNClassifier(2, hidden=8, layers=1, chunk_size=bad)
