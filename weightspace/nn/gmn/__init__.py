"""Graph metanetworks over parameter graphs (Lim et al., ICLR 2024; Kofinas et al., ICLR 2024).

    from weightspace.graph import from_module
    from weightspace.graph.pyg import batch_pyg, collate
    from weightspace.nn.gmn import GMNClassifier, GMNEquivariant, edge_widths

    batch = batch_pyg(structure, stacked_state_dicts)        # or collate([graph, ...])
    clf = GMNClassifier(10, kind="mpnn", edge_widths=edge_widths(structure))
    logits = clf(batch)                                       # (G, 10), invariant
    edit = GMNEquivariant(kind="transformer")
    new_weights = edit.stacked(batch)                         # key -> (G, *shape), equivariant

Layers: `EdgeMPNNLayer` (edge-updating message passing, mean/max/std aggregation),
`RelationalTransformerLayer` (sparse neighbourhood attention with edge-conditioned
q/k/v). Encoders: `NodeEncoder`, `EdgeEncoder` (Fourier features per kernel width),
optional `ProbeFeatures`. Heads: `InvariantReadout`, `EdgeHead`, `NodeHead`, and the
way back to state dicts (`unflatten_values`, `values_to_state_dicts`, `node_space_outputs`).
"""
from .encoders import EdgeEncoder, FourierFeatures, NodeEncoder, edge_widths, sinusoidal
from ...errors import GMNError
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
    "FourierFeatures",
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
