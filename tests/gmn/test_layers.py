"""The sparse layers against slow per-node references, and the named errors."""
from __future__ import annotations

import math

import pytest
import torch
from torch_geometric.data import Data

from tests.gmn.cases import as_batch, structure_of
from weightspace.graph.pyg import batch_pyg
from weightspace.errors import GMNError
from weightspace.nn.gmn import GMNClassifier, RelationalTransformerLayer
from weightspace.nn.gmn.encoders import EdgeEncoder
from weightspace.nn.gmn.inputs import graph_inputs
from weightspace.nn.gmn.mpnn import aggregate
from weightspace.testing import random_weights


def _random_graph(n: int = 7, e: int = 15, d: int = 8, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, n - 1, (2, e), generator=gen)  # node n-1 stays isolated
    return torch.randn(n, d, generator=gen, dtype=torch.float64), torch.randn(e, d, generator=gen, dtype=torch.float64), edge_index


def test_attention_equals_a_per_node_softmax_over_the_neighbourhood():
    h, e, edge_index = _random_graph()
    torch.manual_seed(0)
    layer = RelationalTransformerLayer(8, heads=2).double()
    got = layer.attend(h, e, edge_index)
    q, k, v = layer.qkv(layer.norm_h(h)).chunk(3, dim=1)
    en = layer.norm_e(e)
    fwd, bwd = (layer.edge_qkv[i](en).chunk(3, dim=1) for i in range(2))
    expected = torch.zeros_like(got)
    for r in range(h.shape[0]):
        rows = []  # (q, k, v) of every edge r receives through, in either direction
        for j, (s, d) in enumerate(edge_index.T.tolist()):
            if d == r:
                rows.append((q[r] + fwd[0][j], k[s] + fwd[1][j], v[s] + fwd[2][j]))
            if s == r:
                rows.append((q[r] + bwd[0][j], k[d] + bwd[1][j], v[d] + bwd[2][j]))
        for head in range(2):
            cut = slice(4 * head, 4 * head + 4)
            if not rows:
                continue
            scores = torch.stack([qq[cut] @ kk[cut] for qq, kk, _ in rows]) / math.sqrt(4)
            weights = torch.softmax(scores, 0)
            expected[r, cut] = sum(w * vv[cut] for w, (_, _, vv) in zip(weights, rows))
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    assert torch.equal(got[-1], torch.zeros(8, dtype=torch.float64))


def test_aggregators_equal_per_node_reductions():
    gen = torch.Generator().manual_seed(0)
    msg = torch.randn(12, 3, generator=gen, dtype=torch.float64)
    index = torch.randint(0, 4, (12,), generator=gen)
    index[index == 3] = 0  # node 3 receives nothing
    got = aggregate(msg, index, 4, ("mean", "max", "std", "sum"))
    for node in range(4):
        m = msg[index == node]
        if m.numel() == 0:
            assert torch.equal(got[node], torch.zeros(12, dtype=torch.float64))
            continue
        std = torch.sqrt(m.var(0, unbiased=False) + 1e-6) - 1e-3
        expected = torch.cat([m.mean(0), m.max(0).values, std, m.sum(0)])
        torch.testing.assert_close(got[node], expected, rtol=1e-8, atol=1e-10)


def test_unknown_kernel_width_is_a_named_error():
    spec, structure = structure_of("cnn_bn")
    batch = as_batch(structure, random_weights(spec, torch.Generator().manual_seed(0), (1,), torch.float64))
    model = GMNClassifier(2, hidden=8, layers=1, edge_widths=(1,)).double()
    with pytest.raises(GMNError, match="edges carrying 9 values"):
        model(batch)
    with pytest.raises(GMNError, match="positive edge width"):
        EdgeEncoder(8, widths=(0,))


def test_a_batch_without_graph_meta_is_a_named_error():
    spec, structure = structure_of("mlp")
    data = batch_pyg(structure, random_weights(spec, torch.Generator().manual_seed(0), (1,), torch.float64))
    bare = Data(**{k: v for k, v in data.items() if isinstance(v, torch.Tensor)})
    with pytest.raises(GMNError, match="no GraphMeta"):
        graph_inputs(bare)


def test_bad_settings_are_named_errors():
    with pytest.raises(GMNError, match="unknown kind"):
        GMNClassifier(2, kind="dense")
    with pytest.raises(GMNError, match="multiple of heads"):
        RelationalTransformerLayer(10, heads=3)
    with pytest.raises(GMNError, match="unknown aggregators"):
        GMNClassifier(2, aggregators=("median",))


def test_single_graph_data_reads_like_a_batch_of_one():
    spec, structure = structure_of("siren")
    sd = random_weights(spec, torch.Generator().manual_seed(0), (1,), torch.float64)
    batch = as_batch(structure, sd)
    single = batch_pyg(structure, sd).to_data_list()[0]
    torch.manual_seed(0)
    model = GMNClassifier(2, hidden=8, layers=1).double()
    torch.testing.assert_close(model(single), model(batch), rtol=1e-10, atol=1e-12)
