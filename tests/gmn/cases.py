"""Shared pieces of the GMN tests: catalog architectures as graph structures, and
functions of stacked state dicts that run a metanetwork through the graph batch."""
from __future__ import annotations

import functools

import torch

from tests.graph.cases import traced
from weightspace.graph import graph_structure
from weightspace.nn import WeightSpaceBatch
from weightspace.nn.gmn import GMNClassifier, GMNEquivariant, edge_widths
from weightspace.nn.gmn.heads import node_space_outputs

SYMMETRY_CASES = ["mlp", "siren", "cnn_bn", "resnet_blocks", "transformer_block"]
KINDS = ["mpnn", "transformer"]


@functools.lru_cache(maxsize=None)
def structure_of(name: str):
    """(spec, structure) of a catalog architecture (roles from its trace), values in float64."""
    model, spec, roles = traced(name)
    dtypes = {k: torch.float64 if v.is_floating_point() else v.dtype for k, v in model.state_dict().items()}
    return spec, graph_structure(spec, dtypes, roles)


def as_batch(structure, stacked: dict[str, torch.Tensor]):
    """The graph view (`GraphInputs`) of stacked state dicts key -> (B, *shape)."""
    return WeightSpaceBatch.from_stacked(structure.spec, stacked).graph(structure)


def classifier(structure, kind: str, seed: int = 0, **kwargs) -> GMNClassifier:
    torch.manual_seed(seed)
    return GMNClassifier(3, hidden=16, layers=2, kind=kind, edge_widths=edge_widths(structure), **kwargs).double()


def equivariant(structure, kind: str, node_out: int = 2, seed: int = 0) -> GMNEquivariant:
    torch.manual_seed(seed)
    return GMNEquivariant(16, 2, kind, node_out=node_out, edge_widths=edge_widths(structure)).double()


def readout_fn(model, structure):
    return lambda sd: model(as_batch(structure, sd))


def edge_fn(model, structure):
    """Stacked state dict -> predicted stacked state dict (per-edge outputs through the round trip)."""
    return lambda sd: model.stacked(as_batch(structure, sd))


def node_fn(model, structure):
    """Stacked state dict -> per-node outputs, one (B, size, k) tensor per node space."""

    def fn(sd):
        _, nodes, g = model(as_batch(structure, sd))
        return node_space_outputs(structure, nodes.reshape(g.num_graphs, structure.num_nodes, -1))

    return fn




def set_native(model, flag: bool):
    """Switch the fused edge kernels (`weightspace.nn.gmn.native`) of every layer of `model` on or off."""
    for m in model.modules():
        if hasattr(m, "native"):
            m.native = flag
    return model
