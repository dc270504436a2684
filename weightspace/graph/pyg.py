"""PyTorch Geometric export: one `Data` per network and `Batch`es of them, for users'
PyG pipelines (the graph metanetworks read `weightspace.nn.WeightSpaceBatch.graph`).

Attributes of a `ParamGraphData` (N nodes, E edges, C edge classes, V values):
    node_type, node_layer, node_pos   (N,)     see `weightspace.graph.vocab`
    edge_index (2, E)                          input unit -> output unit
    edge_class (E,)                            index into the class tables below
    class_type, class_layer, class_width (C,), class_shape (C, 3)
    edge_val (V,)                              flat values, edges tile it in edge order
    meta                                       `GraphMeta` (a list of them after batching)
All edges of one entry share type, layer, width and kernel shape, so they are
stored once per class; `edge_class` is incremented by C when batching (as
`edge_index` by N). Edge e carries `edge_val[off[e] : off[e] + width[e]]` with
`width = class_width[edge_class]` and `off` its exclusive cumulative sum (also across
a batch), so kernels of every size stay unpadded: `edge_bucket` gathers one width.
Batches are built with PyG's own `Batch.from_data_list`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

try:
    from torch_geometric.data import Batch, Data
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "weightspace.graph.pyg needs torch_geometric: pip install 'weightspace[graph]' (or torch-geometric)"
    ) from err

from ..errors import GraphError
from .build import ParamGraph, edge_buckets, flatten_values, to_state_dict
from .structure import GraphStructure

NODE_ATTRS = ("node_type", "node_layer", "node_pos")
CLASS_ATTRS = ("class_type", "class_layer", "class_width", "class_shape")


@dataclass(frozen=True, eq=False)
class GraphMeta:
    """What a `Data` needs besides its tensors to give its state dict back."""

    structure: GraphStructure
    extras: Mapping[str, torch.Tensor]
    aliases: Mapping[str, str]


class ParamGraphData(Data):
    """A parameter graph as PyG `Data`; `edge_class` indexes the per-graph class tables."""

    def __inc__(self, key, value, *args, **kwargs):
        if key == "edge_class":
            return self.class_type.shape[0]
        return super().__inc__(key, value, *args, **kwargs)


def edge_attr(data: Data, name: str) -> torch.Tensor:
    """Per-edge `type`, `layer`, `width` or `shape`, read through the class tables."""
    return getattr(data, f"class_{name}")[data.edge_class]


def graph_metas(data: Data) -> list[GraphMeta]:
    """The `GraphMeta` of each graph of a `ParamGraphData` or a `Batch` of them."""
    meta = getattr(data, "meta", None)
    metas = [meta] if isinstance(meta, GraphMeta) else list(meta) if isinstance(meta, (list, tuple)) else []
    if not metas or not all(isinstance(m, GraphMeta) for m in metas):
        raise GraphError("the graph batch carries no GraphMeta: build it with to_pyg, collate or batch_pyg")
    return metas


def edge_offsets(data: Data) -> torch.Tensor:
    """Start of each edge's values in `edge_val` (single graphs and batches): each graph's
    cached `GraphStructure.edge_off`, shifted by the values of the graphs before it."""
    parts, start = [], 0
    for m in graph_metas(data):
        parts.append(m.structure.edge_off.to(data.edge_val.device) + start)
        start += m.structure.num_values
    return torch.cat(parts)


def edge_bucket(data: Data, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges carrying `width` values: (edge ids, (E_w, width) values), e.g. 3x3 kernels at width 9."""
    _, ids, where = next(edge_buckets(edge_attr(data, "width"), edge_offsets(data), (width,)))
    return ids, data.edge_val[where]


def _structure_attrs(st: GraphStructure) -> dict:
    return {
        **{name: getattr(st, name) for name in NODE_ATTRS},
        "edge_index": st.edge_index,
        "edge_class": st.edge_class,
        **{name: getattr(st, name) for name in CLASS_ATTRS},
    }


def to_pyg(graph: ParamGraph) -> ParamGraphData:
    """The graph as `ParamGraphData` (structure tensors are shared, not copied)."""
    data = ParamGraphData(**_structure_attrs(graph.structure), edge_val=graph.values, num_nodes=graph.num_nodes)
    data.meta = GraphMeta(graph.structure, dict(graph.extras), dict(graph.aliases))
    return data


def from_pyg(data: Data) -> ParamGraph:
    """The `ParamGraph` of one (unbatched) `ParamGraphData`, e.g. after editing `edge_val`."""
    meta = getattr(data, "meta", None)
    if not isinstance(meta, GraphMeta):
        raise GraphError("this Data carries no graph meta (split a Batch with to_data_list() first)")
    return ParamGraph(meta.structure, data.edge_val, meta.extras, meta.aliases)


def pyg_to_state_dict(data: Data) -> dict[str, torch.Tensor]:
    """The state dict one `ParamGraphData` carries (exact round trip)."""
    return to_state_dict(from_pyg(data))


def batch_pyg(
    structure: GraphStructure,
    state_dicts: Mapping[str, torch.Tensor] | torch.Tensor,
) -> Batch:
    """One `Batch` of B networks sharing `structure` (`Batch.from_data_list`; structure
    tensors are shared by its graphs, not copied).

    state_dicts: stacked weights (every entry with a leading batch dim B, as zoo
    shards store them) or an already flattened (B, V) value matrix. Non-float extras
    are not carried here.
    """
    if isinstance(state_dicts, torch.Tensor):
        values = state_dicts
    else:
        structure.spec.check(state_dicts, batch_dims=1, where="batch_pyg")
        values = flatten_values(structure, state_dicts, batch_dims=1)
    if values.dim() != 2 or values.shape[1] != structure.num_values:
        raise GraphError(f"values of shape {tuple(values.shape)}; expected (B, {structure.num_values})")
    attrs = _structure_attrs(structure)
    meta = GraphMeta(structure, {}, {})
    graphs = []
    for row in values:
        data = ParamGraphData(**attrs, edge_val=row, num_nodes=structure.num_nodes)
        data.meta = meta
        graphs.append(data)
    return Batch.from_data_list(graphs)


def collate(graphs: Sequence[ParamGraph]) -> Batch:
    """`Batch.from_data_list` of heterogeneous graphs (any mix of architectures)."""
    return Batch.from_data_list([to_pyg(g) for g in graphs])
