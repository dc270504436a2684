"""Parameter graphs of any parsed network: units are nodes, weights are edges.

Node relabelings induced by the spec's group are exactly the network's permutation
symmetries (`node_permutation`); the round trip graph -> state dict is exact.
PyG export lives in `weightspace.graph.pyg` (needs torch_geometric), networkx in
`weightspace.graph.nx`, pictures in `weightspace.graph.draw` (matplotlib).
"""
from .build import ParamGraph, build_graph, from_module, from_parsed, node_permutation, to_state_dict
from .structure import GraphStructure, graph_structure

__all__ = [
    "GraphStructure",
    "ParamGraph",
    "build_graph",
    "from_module",
    "from_parsed",
    "graph_structure",
    "node_permutation",
    "to_state_dict",
]
