"""The plain tensors a graph metanetwork reads, taken once from a PyG `Data`/`Batch`.

Layers take these tensors, never the `Data` container (the PyG habit): the model
calls `graph_inputs(batch)` at its entry and passes tensors on.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...graph.pyg import GraphMeta
from ...graph.structure import GraphStructure
from ...errors import GMNError


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
        in `edge_val` (n, w)) — how encoders read the w values each edge carries."""
        for w in torch.unique(self.class_width).tolist():
            if w == 0:
                continue
            ids = torch.nonzero(self.edge_width == w).flatten()
            yield w, ids, self.edge_off[ids, None] + torch.arange(w, device=ids.device)

    def homogeneous(self) -> bool:
        """Whether every graph shares one structure (the fast batched paths apply)."""
        return all(s is self.structures[0] for s in self.structures[1:])


def _metas(data) -> list[GraphMeta]:
    meta = getattr(data, "meta", None)
    metas = [meta] if isinstance(meta, GraphMeta) else list(meta) if isinstance(meta, (list, tuple)) else []
    if not metas or not all(isinstance(m, GraphMeta) for m in metas):
        raise GMNError(
            "the graph batch carries no GraphMeta: build it with weightspace.graph.pyg.to_pyg, collate or batch_pyg"
        )
    return metas


def graph_inputs(data) -> GraphInputs:
    """The tensors of a `ParamGraphData` or a `Batch` of them (from `collate` or `batch_pyg`)."""
    metas = _metas(data)
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
    width = data.class_width[data.edge_class]
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
        edge_width=width,
        edge_off=torch.cumsum(width, 0) - width,
        node_ptr=nodes,
        value_ptr=values,
        structures=structures,
    )
