"""Graph metanetworks over parameter graphs (Lim et al., ICLR 2024; Kofinas et al., ICLR 2024).

    from weightspace.graph import graph_structure
    from weightspace.nn import WeightSpaceBatch
    from weightspace.nn.gmn import GMNClassifier, GMNEquivariant, edge_widths

    structure = graph_structure(spec)
    g = WeightSpaceBatch.from_stacked(spec, stacked).graph(structure)   # the graph view
    clf = GMNClassifier(10, kind="mpnn", edge_widths=edge_widths(structure))
    logits = clf(g)                                           # (G, 10), invariant
    edit = GMNEquivariant(kind="transformer")
    new_weights = edit.stacked(g)                             # key -> (G, *shape), equivariant

Mixed architectures: `clf(weightspace.graph.pyg.collate([graph, ...]))` (PyG export,
read with `graph_inputs`).

Layers: `EdgeMPNNLayer` (edge-updating message passing, mean/max/std aggregation),
`RelationalTransformerLayer` (sparse neighbourhood attention with edge-conditioned
q/k/v). Encoders: `NodeEncoder`, `EdgeEncoder` (Fourier features per kernel width),
optional `ProbeFeatures`. Heads: `InvariantReadout`, `EdgeHead`, `NodeHead`, and the
way back to state dicts (`unflatten_values`, `values_to_state_dicts`, `node_space_outputs`).
"""
from ...errors import GMNError
from .encoders import EdgeEncoder, NodeEncoder, edge_widths, sinusoidal
from .heads import (
    EdgeHead,
    InvariantReadout,
    NodeHead,
    node_space_outputs,
    node_space_spec,
    stacked_state_dict,
    unflatten_values,
    values_to_state_dicts,
)
from .inputs import GraphInputs, graph_inputs
from .models import GMNClassifier, GMNEquivariant, GraphMetaNetwork
from .mpnn import EdgeMPNNLayer, aggregate
from .probes import ProbeFeatures, probed_units
from .transformer import RelationalTransformerLayer

__all__ = [
    "EdgeEncoder",
    "EdgeHead",
    "EdgeMPNNLayer",
    "GMNClassifier",
    "GMNEquivariant",
    "GMNError",
    "GraphInputs",
    "GraphMetaNetwork",
    "InvariantReadout",
    "NodeEncoder",
    "NodeHead",
    "ProbeFeatures",
    "RelationalTransformerLayer",
    "aggregate",
    "edge_widths",
    "graph_inputs",
    "node_space_outputs",
    "node_space_spec",
    "probed_units",
    "sinusoidal",
    "stacked_state_dict",
    "unflatten_values",
    "values_to_state_dicts",
]
