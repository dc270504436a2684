"""The plain tensors a graph metanetwork reads.

Layers take these tensors, never the `Data` container (the PyG habit). Many networks
of one architecture become them directly (`WeightSpaceBatch.graph(structure)`, or
`GraphInputs.from_values` for flat (B, V) values): the structure's tables tiled, no PyG
object in between. Graphs exported to PyG (`weightspace.graph.pyg`, e.g. a mixed-
architecture `collate`) are read with `graph_inputs(data)`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...graph.build import edge_buckets
from ...graph.pyg import edge_attr, edge_offsets, graph_metas
from ...graph.structure import GraphStructure
from ...errors import GMNError, GraphError


@dataclass(frozen=True, eq=False)
class GraphInputs:
    """One batch of parameter graphs as tensors (N nodes, E edges, C edge classes, V values, G graphs).

    node_type, node_layer, node_pos, node_graph: (N,); edge_index (2, E); edge_class (E,);
    class_type, class_layer, class_width (C,), class_shape (C, 3); edge_val (V,);
    edge_width, edge_off (E,): values of edge e are edge_val[edge_off[e] : edge_off[e] + edge_width[e]];
    node_ptr, value_ptr (G + 1,): where each graph's nodes and values start;
    structures: each graph's `GraphStructure` (for the way back to state dicts and probes).
    """

    node_type: torch.Tensor
    node_layer: torch.Tensor
    node_pos: torch.Tensor
    node_graph: torch.Tensor
    edge_index: torch.Tensor
    edge_class: torch.Tensor
    class_type: torch.Tensor
    class_layer: torch.Tensor
    class_width: torch.Tensor
    class_shape: torch.Tensor
    edge_val: torch.Tensor
    edge_width: torch.Tensor
    edge_off: torch.Tensor
    node_ptr: torch.Tensor
    value_ptr: torch.Tensor
    structures: tuple[GraphStructure, ...]

    @property
    def num_nodes(self) -> int:
        return int(self.node_type.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def num_graphs(self) -> int:
        return len(self.structures)

    @property
    def edge_graph(self) -> torch.Tensor:
        """(E,) the graph of each edge."""
        return self.node_graph[self.edge_index[0]]

    def width_slices(self):
        """Per value width w > 0 present in the batch: (w, edge ids (n,), their values' positions
        in `edge_val` (n, w)) — how encoders and heads read the w values each edge carries
        (`weightspace.graph.build.edge_buckets`)."""
        widths = [w for w in torch.unique(self.class_width).tolist() if w > 0]
        return edge_buckets(self.edge_width, self.edge_off, widths)

    def homogeneous(self) -> bool:
        """Whether every graph shares one structure (the fast batched paths apply)."""
        return all(s is self.structures[0] for s in self.structures[1:])


    @classmethod
    def from_values(cls, structure: GraphStructure, values: torch.Tensor) -> "GraphInputs":
        """B graphs of `structure` carrying flat values (B, V) (`weightspace.graph.build.flatten_values`).

        The structure's tables for B graphs (`GraphStructure.batch_tables`, derived once per
        batch size and device, shared read-only) plus the values; no PyG object is built."""
        if values.dim() != 2 or values.shape[1] != structure.num_values:
            raise GMNError(f"values of shape {tuple(values.shape)}; expected (B, {structure.num_values})")
        b = values.shape[0]
        return cls(**structure.batch_tables(b, values.device), edge_val=values.reshape(-1), structures=(structure,) * b)


def graph_inputs(data) -> GraphInputs:
    """The tensors of an exported `ParamGraphData` or a `Batch` of them (`weightspace.graph.pyg`)."""
    try:
        metas = graph_metas(data)
    except GraphError as err:
        raise GMNError(str(err)) from err
    structures = tuple(m.structure for m in metas)
    device = data.edge_val.device
    nodes = torch.tensor([0] + [s.num_nodes for s in structures], device=device).cumsum(0)
    values = torch.tensor([0] + [s.num_values for s in structures], device=device).cumsum(0)
    n = int(nodes[-1])
    if data.node_type.shape[0] != n or data.edge_val.shape[0] != int(values[-1]):
        raise GMNError(
            f"the batch holds {data.node_type.shape[0]} nodes and {data.edge_val.shape[0]} values, its "
            f"graph metas describe {n} and {int(values[-1])}"
        )
    batch = getattr(data, "batch", None)
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=device)
    return GraphInputs(
        node_type=data.node_type,
        node_layer=data.node_layer,
        node_pos=data.node_pos,
        node_graph=batch,
        edge_index=data.edge_index,
        edge_class=data.edge_class,
        class_type=data.class_type,
        class_layer=data.class_layer,
        class_width=data.class_width,
        class_shape=data.class_shape,
        edge_val=data.edge_val,
        edge_width=edge_attr(data, "width"),
        edge_off=edge_offsets(data),
        node_ptr=nodes,
        value_ptr=values,
        structures=structures,
    )
