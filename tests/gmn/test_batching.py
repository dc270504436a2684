"""Heterogeneous batches give each network the outputs it gets alone; the graph view of
a one-architecture batch equals the PyG export read back; the way back to state dicts is exact."""
from __future__ import annotations

import pytest
import torch

from tests.gmn.cases import KINDS, as_batch, structure_of
from weightspace.graph import ParamGraph, build_graph
from weightspace.graph.build import flatten_values
from weightspace.graph.pyg import batch_pyg, collate
from weightspace.nn.gmn import GMNClassifier, GMNEquivariant, GraphInputs, edge_widths
from weightspace.nn.gmn.heads import stacked_state_dict, unflatten_values, values_to_state_dicts
from weightspace.nn.gmn.inputs import graph_inputs
from weightspace.testing import random_weights

MIXED = ["mlp", "cnn_bn", "transformer_block", "siren", "resnet_blocks"]


def _graph(name: str, seed: int) -> tuple[ParamGraph, dict]:
    spec, structure = structure_of(name)
    sd = random_weights(spec, torch.Generator().manual_seed(seed), dtype=torch.float64)
    return build_graph(spec, sd, structure=structure), sd


def _widths() -> tuple[int, ...]:
    return edge_widths(*(structure_of(n)[1] for n in MIXED))


@pytest.mark.parametrize("kind", KINDS)
def test_heterogeneous_batch_equals_each_network_alone(kind):
    graphs = [_graph(name, i)[0] for i, name in enumerate(MIXED)]
    torch.manual_seed(0)
    clf = GMNClassifier(4, hidden=16, layers=2, kind=kind, edge_widths=_widths()).double()
    torch.manual_seed(0)
    edit = GMNEquivariant(16, 2, kind, node_out=3, edge_widths=_widths()).double()
    together = clf(collate(graphs))
    values, nodes, g = edit(collate(graphs))
    assert together.shape == (len(graphs), 4)
    node_ptr = g.node_ptr.tolist()
    for i, graph in enumerate(graphs):
        alone = clf(collate([graph]))
        torch.testing.assert_close(together[i : i + 1], alone, rtol=1e-10, atol=1e-12)
        v_alone, n_alone, _ = edit(collate([graph]))
        torch.testing.assert_close(values[g.value_ptr[i] : g.value_ptr[i + 1]], v_alone, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(nodes[node_ptr[i] : node_ptr[i + 1]], n_alone, rtol=1e-10, atol=1e-12)
    # a different order of the same networks permutes the rows, nothing else
    order = [3, 0, 4, 2, 1]
    torch.testing.assert_close(clf(collate([graphs[j] for j in order])), together[order], rtol=1e-10, atol=1e-12)


def test_fast_batch_equals_collated_batch():
    spec, structure = structure_of("cnn_bn")
    stacked = random_weights(spec, torch.Generator().manual_seed(3), (3,), torch.float64)
    singles = [build_graph(spec, {k: v[i] for k, v in stacked.items()}, structure=structure) for i in range(3)]
    torch.manual_seed(0)
    clf = GMNClassifier(2, hidden=16, layers=2, edge_widths=edge_widths(structure)).double()
    torch.testing.assert_close(clf(as_batch(structure, stacked)), clf(collate(singles)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", MIXED)
def test_graph_view_equals_the_pyg_export_read_back(name):
    """Every tensor of `WeightSpaceBatch.graph` equals `graph_inputs` of the PyG `Batch` export."""
    spec, structure = structure_of(name)
    stacked = random_weights(spec, torch.Generator().manual_seed(5), (3,), torch.float64)
    fast = as_batch(structure, stacked)
    exported = graph_inputs(batch_pyg(structure, stacked))
    singles = [build_graph(spec, {k: v[i] for k, v in stacked.items()}, structure=structure) for i in range(3)]
    collated = graph_inputs(collate(singles))
    for other in (exported, collated):
        for name_ in GraphInputs.__dataclass_fields__:
            a, b = getattr(fast, name_), getattr(other, name_)
            if isinstance(a, torch.Tensor):
                assert a.dtype == b.dtype and torch.equal(a, b), name_
        assert all(s is structure for s in other.structures) and len(other.structures) == 3
    assert torch.equal(fast.edge_off, structure.edge_off.repeat(3) + torch.arange(3).repeat_interleave(
        structure.num_edges) * structure.num_values)


@pytest.mark.parametrize("name", MIXED)
def test_unflatten_values_inverts_flatten_exactly(name):
    spec, structure = structure_of(name)
    stacked = random_weights(spec, torch.Generator().manual_seed(1), (2,), torch.float64)
    back = unflatten_values(structure, flatten_values(structure, stacked, batch_dims=1))
    floats = {k for k, v in stacked.items() if v.is_floating_point()}
    assert set(back) == floats
    for k in floats:
        assert torch.equal(back[k], stacked[k]), k


def test_values_of_a_mixed_batch_split_back_to_each_state_dict():
    """Offsets across graphs: a batch's edge_val read back gives every network's own weights."""
    parts = [_graph(name, 10 + i) for i, name in enumerate(MIXED)]
    g = graph_inputs(collate([p[0] for p in parts]))
    for (_, sd), back in zip(parts, values_to_state_dicts(g, g.edge_val)):
        assert set(back) == {k for k, v in sd.items() if v.is_floating_point()}
        assert all(torch.equal(back[k], sd[k]) for k in back)
    spec, structure = structure_of("siren")
    stacked = random_weights(spec, torch.Generator().manual_seed(4), (4,), torch.float64)
    g = as_batch(structure, stacked)
    assert all(torch.equal(v, stacked[k]) for k, v in stacked_state_dict(g, g.edge_val).items())


def test_graph_view_needs_one_channel_and_the_structure_entries():
    from weightspace.errors import KeyMismatchError, ShapeMismatchError
    from weightspace.nn import WeightSpaceBatch, metanet_spec

    spec, structure = structure_of("cnn_bn")
    batch = WeightSpaceBatch.from_stacked(spec, random_weights(spec, torch.Generator().manual_seed(0), (2,), torch.float64))
    with pytest.raises(ShapeMismatchError, match="one channel"):
        batch.map(lambda t: torch.cat([t, t], dim=1)).graph(structure)
    params = WeightSpaceBatch.from_stacked(metanet_spec(spec), batch.to_stacked())
    with pytest.raises(KeyMismatchError, match="running_mean"):
        params.graph(structure)


def test_batch_tables_are_derived_once_per_batch_size():
    from weightspace.graph.structure import BATCH_CACHE

    spec, structure = structure_of("siren")
    stacked = random_weights(spec, torch.Generator().manual_seed(0), (3,), torch.float64)
    first, second = as_batch(structure, stacked), as_batch(structure, {k: v + 1 for k, v in stacked.items()})
    assert first.edge_index is second.edge_index and first.edge_off is second.edge_off
    assert not torch.equal(first.edge_val, second.edge_val)
    for b in range(4, 4 + BATCH_CACHE):
        structure.batch_tables(b)
    assert structure.batch_tables(3)["edge_index"] is not first.edge_index  # evicted, rebuilt equal
    assert torch.equal(structure.batch_tables(3)["edge_index"], first.edge_index)
