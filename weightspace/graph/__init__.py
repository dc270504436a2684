"""Parameter graphs of any parsed network: units are nodes, weights are edges.

Node relabelings induced by the spec's group are exactly the network's permutation
symmetries (`node_permutation`); the round trip graph -> state dict is exact.
PyG export lives in `weightspace.graph.pyg` (needs torch_geometric), networkx in
`weightspace.graph.nx`, pictures in `weightspace.graph.draw` (matplotlib).
"""
from .build import ParamGraph, build_graph, edge_buckets, flatten_values, from_module, node_permutation, to_state_dict
from .errors import GraphError
from .roles import Role, roles_from_trace, trace_roles
from .structure import EntryLayout, GraphStructure, NodeSpace, graph_structure
from .vocab import EDGE_TYPES, NODE_TYPES

__all__ = [
    "EDGE_TYPES",
    "NODE_TYPES",
    "EntryLayout",
    "GraphError",
    "GraphStructure",
    "NodeSpace",
    "ParamGraph",
    "Role",
    "build_graph",
    "edge_buckets",
    "flatten_values",
    "from_module",
    "graph_structure",
    "node_permutation",
    "roles_from_trace",
    "to_state_dict",
    "trace_roles",
]
