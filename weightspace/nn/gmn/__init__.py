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
read into `GraphInputs` by `weightspace.nn.gmn.inputs.graph_inputs`).

Sign/scale symmetries too (ScaleGMN, from the spec's `extra_action`): `ScaleGMN`,
`ScaleGMNClassifier`, `ScaleMPNNLayer`; which units carry a sign or scale: `.charges`.

Layers: `EdgeMPNNLayer` (edge-updating message passing, mean/max/std aggregation),
`RelationalTransformerLayer` (sparse neighbourhood attention with edge-conditioned
q/k/v). Encoders (`.encoders`: `NodeEncoder`, `EdgeEncoder`, Fourier features per
kernel width), optional `ProbeFeatures`. Heads: `InvariantReadout`; per-edge and
per-node heads and the way back to state dicts live in `weightspace.nn.gmn.heads`.
On CPU the per-edge work runs in fused kernels (`.native`), elsewhere in chunks (`.stream`).
"""
from .encoders import edge_widths
from .heads import InvariantReadout
from .inputs import GraphInputs
from .models import GMNClassifier, GMNEquivariant, GraphMetaNetwork
from .mpnn import EdgeMPNNLayer
from .probes import ProbeFeatures
from .scale_gmn import ScaleGMN, ScaleGMNClassifier
from .scale_mpnn import ScaleMPNNLayer
from .transformer import RelationalTransformerLayer

__all__ = [
    "EdgeMPNNLayer",
    "GMNClassifier",
    "GMNEquivariant",
    "GraphInputs",
    "GraphMetaNetwork",
    "InvariantReadout",
    "ProbeFeatures",
    "RelationalTransformerLayer",
    "ScaleGMN",
    "ScaleGMNClassifier",
    "ScaleMPNNLayer",
    "edge_widths",
]
