"""Without a trace (inferred or hand-written specs) the graph follows conventions and
stays sound: random specs of the testing helpers, random elements, exact round trip."""
from __future__ import annotations

import pytest
import torch

from tests.graph.cases import edge_multiset, node_features
from weightspace.graph import build_graph, node_permutation, to_state_dict
from weightspace.testing import random_attention_spec, random_cnn_spec, random_mlp_spec, random_weights

SPECS = {
    "mlp": lambda: random_mlp_spec([3, 7, 5, 2]),
    "mlp_1d_io": lambda: random_mlp_spec([1, 6, 1]),
    "cnn": lambda: random_cnn_spec([3, 4, 5], kernel=3, flatten_hw=4, classes=3, batchnorm=True),
    "attention": lambda: random_attention_spec(8, 2, 3),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_only_graph_is_sound_and_round_trips(name):
    spec = SPECS[name]()
    sd = random_weights(spec, torch.Generator().manual_seed(0))
    graph = build_graph(spec, sd)
    for seed in range(3):
        g = spec.random_element(torch.Generator().manual_seed(seed))
        sigma = node_permutation(graph.structure, g)
        permuted = build_graph(spec, spec.apply(sd, g), structure=graph.structure)
        feats = node_features(graph)
        assert torch.equal(feats[torch.argsort(sigma)], feats)
        assert edge_multiset(graph, sigma) == edge_multiset(permuted)
    back = to_state_dict(graph)
    assert all(torch.equal(back[k], sd[k]) and back[k].dtype == sd[k].dtype for k in sd)


def test_size_one_axes_share_the_unit_of_their_module():
    """Linear(6 -> 1): weight (1, 6) and bias (1,) meet at the same single output node."""
    spec = random_mlp_spec([1, 6, 1])
    graph = build_graph(spec, random_weights(spec, torch.Generator().manual_seed(0)))
    st = graph.structure
    w, b = st.entry("layers.1.weight"), st.entry("layers.1.bias")
    assert w.edge_count == 6 and b.edge_count == 1
    w_dst = set(st.edge_index[1, w.edge_start : w.edge_start + w.edge_count].tolist())
    b_dst = set(st.edge_index[1, b.edge_start : b.edge_start + b.edge_count].tolist())
    assert w_dst == b_dst and len(w_dst) == 1


def test_mixed_dtypes_round_trip_exactly():
    spec = random_mlp_spec([3, 5, 2])
    sd = random_weights(spec, torch.Generator().manual_seed(0))
    sd = {k: v.to(torch.float64 if "0" in k else torch.bfloat16) for k, v in sd.items()}
    graph = build_graph(spec, sd)
    assert graph.values.dtype == torch.float64
    back = to_state_dict(graph)
    assert all(torch.equal(back[k], sd[k]) and back[k].dtype == sd[k].dtype for k in sd)
