"""Soundness on every catalog architecture: permuting the network with a random spec
element equals relabeling the graph's nodes; round trip and edge accounting exact."""
from __future__ import annotations

import pytest
import torch

from tests.graph.cases import NAMES, edge_multiset, graph_of, node_features, traced
from weightspace.graph import build_graph, node_permutation, to_state_dict
from weightspace.graph.vocab import EDGE_TYPES

MEMBER = EDGE_TYPES.index("member")


@pytest.mark.parametrize("name", NAMES)
def test_permuting_the_network_relabels_the_graph(name):
    graph, sd = graph_of(name)
    _, spec, roles = traced(name)
    for seed in range(2):
        g = spec.random_element(torch.Generator().manual_seed(seed))
        permuted = build_graph(spec, spec.apply(sd, g), roles, structure=graph.structure)
        sigma = node_permutation(graph.structure, g)
        assert sorted(sigma.tolist()) == list(range(graph.num_nodes))
        assert not torch.equal(sigma, torch.arange(graph.num_nodes)), "the element moved no node"
        # node i of the original graph is node sigma[i] of the permuted one, with equal features
        feats = node_features(graph)
        assert torch.equal(feats[torch.argsort(sigma)], feats)
        assert edge_multiset(graph, sigma) == edge_multiset(permuted)


@pytest.mark.parametrize("name", ["mlp", "cnn_bn", "transformer_block", "hf_gpt2"])
def test_permuting_one_tensor_alone_is_not_a_relabeling(name):
    """Negative control: a permutation the network does not have changes the edge multiset."""
    graph, sd = graph_of(name)
    _, spec, roles = traced(name)
    g = spec.random_element(torch.Generator().manual_seed(0))
    group = max(spec.groups, key=lambda n: spec.groups[n].size)
    member = spec.members(group)[0]
    broken = dict(sd)
    broken[member.key] = spec.apply({member.key: sd[member.key]}, g, strict=False)[member.key]
    other = build_graph(spec, broken, roles, structure=graph.structure)
    assert edge_multiset(graph, node_permutation(graph.structure, g)) != edge_multiset(other)


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_is_bit_exact_also_after_editing(name):
    graph, sd = graph_of(name)
    back = to_state_dict(graph)
    assert list(back) == [k for k in sd if k in back] and set(back) == set(sd)
    for k, t in sd.items():
        assert back[k].dtype == t.dtype and back[k].shape == t.shape
        assert torch.equal(back[k], t), k
    edited_values = graph.values.clone()
    edited_values[torch.randperm(edited_values.numel(), generator=torch.Generator().manual_seed(1))[:5]] += 1.5
    edited = to_state_dict(graph.with_values(edited_values))
    aliases = traced(name)[1].aliases
    changed = sum(int((edited[k] != t).sum()) for k, t in sd.items() if t.is_floating_point() and k not in aliases)
    assert changed == 5
    assert all(edited[a] is edited[target] for a, target in aliases.items() if a in sd)
    assert torch.equal(build_graph(traced(name)[1], edited, traced(name)[2]).values, edited_values)


@pytest.mark.parametrize("name", NAMES)
def test_edges_carry_every_float_element_exactly_once(name):
    graph, sd = graph_of(name)
    st = graph.structure
    weights = st.edge_type != MEMBER
    floats = sum(t.numel() for k, t in sd.items() if t.is_floating_point() and k not in traced(name)[1].aliases)
    assert int(st.edge_width[weights].sum()) == floats == st.num_values
    # offsets tile the value vector without gaps or overlaps
    offs, widths = st.edge_off[weights], st.edge_width[weights]
    order = torch.argsort(offs)
    ends = offs[order] + widths[order]
    assert int(offs[order][0]) == 0 and torch.equal(ends[:-1], offs[order][1:]) and int(ends[-1]) == floats
    per_entry = {e.key: e.edge_count for e in st.entries if e.carried}
    for e in st.entries:
        if e.carried:
            assert e.edge_count * e.width == sd[e.key].numel(), e.key
    assert int(weights.sum()) == sum(per_entry.values())


def test_conv_kernels_are_one_edge_per_channel_pair_bucketed_by_size():
    graph, sd = graph_of("resnet_blocks")
    st = graph.structure
    conv = st.entry("b1c1.weight")
    assert conv.edge_type == "conv" and conv.width == 9 and conv.edge_count == 10 * 6
    shortcut = st.entry("b2sc.weight")
    assert shortcut.width == 1 and shortcut.edge_count == 12 * 6
    ids, kernels = graph.edge_values(9)
    first = ids[(ids >= conv.edge_start) & (ids < conv.edge_start + conv.edge_count)]
    assert torch.equal(graph.values[st.edge_off[first[0]] : st.edge_off[first[0]] + 9], sd["b1c1.weight"][0, 0].flatten())
    assert kernels.shape[1] == 9 and set(st.edge_width.unique().tolist()) <= {0, 1, 9}


def test_attention_edges_are_typed_and_heads_are_nodes():
    graph, _ = graph_of("transformer_block")
    st = graph.structure
    assert [st.entry(f"attn.{p}.weight").edge_type for p in "qkvo"] == ["q", "k", "v", "o"]
    kinds = {sp.type for sp in st.spaces}
    assert {"head", "head_dim", "product", "residual"} <= kinds
    fused, _ = graph_of("hf_gpt2")
    assert fused.structure.entry("model.transformer.h.0.attn.c_attn.weight").edge_type == "qkv"
    assert fused.structure.entry("model.transformer.h.0.attn.c_proj.weight").edge_type == "o"


def test_residual_stream_is_one_shared_node_set():
    graph, _ = graph_of("transformer_block")
    st = graph.structure
    residual = [sp for sp in st.spaces if sp.type == "residual"]
    assert len(residual) == 1 and residual[0].size == 16
    lo, hi = residual[0].start, residual[0].start + residual[0].size
    touching = {e.key for e in st.entries if e.carried and e.edge_count
                for ends in [st.edge_index[:, e.edge_start : e.edge_start + e.edge_count]]
                if bool(((ends >= lo) & (ends < hi)).any())}
    assert {"inp.weight", "attn.q.weight", "attn.o.weight", "fc2.weight", "head.weight", "ln1.weight"} <= touching
