"""PyG export: heterogeneous batches collate and split back exactly; the batch of one
architecture from stacked weights equals Batch.from_data_list of each network."""
from __future__ import annotations

import torch
from torch_geometric.data import Batch

from tests.graph.cases import graph_of, traced
from weightspace.graph import build_graph, to_state_dict
from weightspace.graph.pyg import batch_pyg, collate, edge_attr, edge_bucket, edge_offsets, from_pyg, pyg_to_state_dict, to_pyg
from weightspace.testing import random_weights


def _tensor_items(data):
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


def test_heterogeneous_batch_collates_and_splits_back_exactly():
    parts = [graph_of(name) for name in ("mlp", "cnn_bn", "transformer_block")]
    graphs = [g for g, _ in parts]
    batch = collate(graphs)
    assert batch.num_graphs == 3
    assert batch.num_nodes == sum(g.num_nodes for g in graphs)
    assert batch.edge_val.numel() == sum(g.values.numel() for g in graphs)
    # increments: endpoints stay inside their own graph, classes and values too
    value_ptr = torch.tensor([0] + [g.values.numel() for g in graphs]).cumsum(0)
    class_ptr = torch.tensor([0] + [g.structure.class_type.numel() for g in graphs]).cumsum(0)
    edge_graph = batch.batch[batch.edge_index[0]]
    assert torch.equal(edge_graph, batch.batch[batch.edge_index[1]])
    assert bool((batch.edge_class >= class_ptr[edge_graph]).all() and (batch.edge_class < class_ptr[edge_graph + 1]).all())
    offsets, widths = edge_offsets(batch), edge_attr(batch, "width")
    assert bool((offsets >= value_ptr[edge_graph]).all() and (offsets + widths <= value_ptr[edge_graph + 1]).all())
    assert torch.equal(edge_attr(batch, "type"), torch.cat([g.structure.edge_type for g in graphs]))
    assert torch.equal(edge_attr(batch, "shape"), torch.cat([g.structure.edge_shape for g in graphs]))
    for (graph, sd), data in zip(parts, batch.to_data_list()):
        single = to_pyg(graph)
        for key, value in _tensor_items(single).items():
            assert torch.equal(data[key], value), key
        back = pyg_to_state_dict(data)
        assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)


def test_kernel_buckets_of_a_batch_match_each_graph():
    """Width-9 edges (3x3 kernels) read from a mixed batch equal those read from each graph."""
    cnn, _ = graph_of("cnn_bn")
    mlp, _ = graph_of("mlp")
    batch = collate([mlp, cnn])
    ids, kernels = edge_bucket(batch, 9)
    own_ids, own = cnn.edge_values(9)
    assert torch.equal(ids - mlp.num_edges, own_ids) and torch.equal(kernels, own)
    ids1, scalars = edge_bucket(batch, 1)
    assert scalars.shape == (int((edge_attr(batch, "width") == 1).sum()), 1)


def test_stacked_batch_equals_from_data_list_and_splits_back():
    model, spec, roles = traced("siren")
    structure = build_graph(spec, model.state_dict(), roles).structure
    stacked = random_weights(spec, torch.Generator().manual_seed(0), batch_shape=(5,))
    singles = [{k: v[i] for k, v in stacked.items()} for i in range(5)]
    slow = Batch.from_data_list([to_pyg(build_graph(spec, sd, roles, structure=structure)) for sd in singles])
    fast = batch_pyg(structure, stacked)
    assert set(_tensor_items(slow)) == set(_tensor_items(fast))
    for key, value in _tensor_items(slow).items():
        assert torch.equal(fast[key], value), key
    assert fast.num_graphs == 5 and fast.num_nodes == slow.num_nodes
    for i, sd in enumerate(singles):
        back = to_state_dict(from_pyg(fast.get_example(i)))
        assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_stacked_batch_with_buffers_and_kernels():
    model, spec, roles = traced("cnn_bn")
    structure = build_graph(spec, model.state_dict(), roles).structure
    stacked = random_weights(spec, torch.Generator().manual_seed(1), batch_shape=(3,))
    fast = batch_pyg(structure, stacked)
    for i in range(3):
        graph = from_pyg(fast.get_example(i))
        expect = build_graph(spec, {k: v[i] for k, v in stacked.items()}, roles, structure=structure)
        assert torch.equal(graph.values, expect.values)
