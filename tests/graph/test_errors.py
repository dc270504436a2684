"""Bad input gives named errors that say which key or size was wrong."""
from __future__ import annotations

import pytest
import torch

from tests.graph.cases import graph_of, traced
from weightspace.errors import GraphError, KeyMismatchError, ShapeMismatchError
from weightspace.graph import build_graph
from weightspace.graph.pyg import batch_pyg, from_pyg
from torch_geometric.data import Data


def test_missing_and_unexpected_keys_are_named():
    model, spec, roles = traced("mlp")
    sd = dict(model.state_dict())
    del sd["fc2.bias"]
    sd["fc9.weight"] = torch.zeros(2, 2)
    with pytest.raises(KeyMismatchError, match=r"fc2\.bias") as err:
        build_graph(spec, sd, roles)
    assert "fc9.weight" in str(err.value)


def test_shape_disagreement_names_the_key():
    model, spec, roles = traced("cnn_bn")
    sd = dict(model.state_dict())
    sd["conv2.weight"] = torch.zeros(10, 6, 5, 5)
    with pytest.raises(ShapeMismatchError, match=r"conv2\.weight.*\(10, 6, 5, 5\)"):
        build_graph(spec, sd, roles)


def test_wrong_number_of_values_and_foreign_structure():
    graph, sd = graph_of("mlp")
    with pytest.raises(GraphError, match="values"):
        graph.with_values(graph.values[:-1])
    _, other_spec, other_roles = traced("siren")
    with pytest.raises(GraphError, match="different spec"):
        build_graph(traced("mlp")[1], sd, traced("mlp")[2], structure=build_graph(
            other_spec, traced("siren")[0].state_dict(), other_roles).structure)
    with pytest.raises(GraphError, match=r"\(B, "):
        batch_pyg(graph.structure, torch.zeros(2, graph.values.numel() + 1))
    with pytest.raises(GraphError, match="meta"):
        from_pyg(Data(edge_val=graph.values))


def test_values_wider_than_the_structure_are_refused():
    import torch

    from weightspace.errors import GraphError
    from weightspace.graph import graph_structure
    from weightspace.graph.build import flatten_values
    from weightspace.testing import random_mlp_spec, random_weights

    spec = random_mlp_spec([3, 4, 2])
    sd = random_weights(spec, generator=torch.Generator().manual_seed(0))
    structure = graph_structure(spec, dtypes={k: torch.float32 for k in spec.entries})
    flatten_values(structure, {k: v.float() for k, v in sd.items()})
    with pytest.raises(GraphError, match="float64"):
        flatten_values(structure, {k: v.double() for k, v in sd.items()})
