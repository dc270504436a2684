"""PyTorch Geometric export: one `Data` per network, and a fast batch for many
networks of one architecture.

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

from .build import ParamGraph, flatten_values, to_state_dict
from ..errors import GraphError
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


def edge_offsets(data: Data) -> torch.Tensor:
    """Start of each edge's values in `edge_val` (works on single graphs and batches)."""
    width = edge_attr(data, "width")
    return torch.cumsum(width, 0) - width


def edge_bucket(data: Data, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges carrying `width` values: (edge ids, (E_w, width) values), e.g. 3x3 kernels at width 9."""
    widths = edge_attr(data, "width")
    ids = torch.nonzero(widths == width).flatten()
    start = (torch.cumsum(widths, 0) - widths)[ids]
    return ids, data.edge_val[start[:, None] + torch.arange(width, device=start.device)]


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


def _tile(t: torch.Tensor, b: int, step: int = 0) -> torch.Tensor:
    """b copies of `t` along dim 0 (last dim for edge_index), copy i shifted by i*step."""
    if step:
        shift = torch.arange(b) * step
        if t.dim() == 2 and t.shape[0] == 2:
            return (t[:, None, :] + shift[None, :, None]).reshape(2, -1)
        return (t[None] + shift[:, None]).reshape(-1)
    return t.expand(b, *t.shape).reshape(b * t.shape[0], *t.shape[1:])


def batch_pyg(
    structure: GraphStructure,
    state_dicts: Mapping[str, torch.Tensor] | torch.Tensor,
) -> Batch:
    """One `Batch` of B networks sharing `structure`, built with tensor ops.

    state_dicts: stacked weights (every entry with a leading batch dim B, as zoo
    shards store them) or an already flattened (B, V) value matrix. Equal to
    `Batch.from_data_list([to_pyg(...) for each network])`, including
    `to_data_list()` / `get_example(i)`. Non-float extras are not carried here.
    """
    if isinstance(state_dicts, torch.Tensor):
        values = state_dicts
    else:
        structure.spec.check(state_dicts, batch_dims=1, where="batch_pyg")
        values = flatten_values(structure, state_dicts, batch_dims=1)
    if values.dim() != 2 or values.shape[1] != structure.num_values:
        raise GraphError(f"values of shape {tuple(values.shape)}; expected (B, {structure.num_values})")
    b, n, e, v = values.shape[0], structure.num_nodes, structure.num_edges, structure.num_values
    c = structure.class_type.shape[0]
    attrs = {name: _tile(getattr(structure, name), b) for name in NODE_ATTRS + CLASS_ATTRS}
    attrs["edge_index"] = _tile(structure.edge_index, b, n)
    attrs["edge_class"] = _tile(structure.edge_class, b, c)
    attrs["edge_val"] = values.reshape(-1)
    batch = Batch(_base_cls=ParamGraphData, **attrs)
    graphs = torch.arange(b)
    batch.batch = graphs.repeat_interleave(n)
    batch.ptr = graphs.new_tensor(range(0, (b + 1) * n, n)) if b else torch.zeros(1, dtype=torch.long)
    batch.num_nodes = b * n
    batch.meta = [GraphMeta(structure, {}, {})] * b
    steps = {name: n for name in NODE_ATTRS} | {name: c for name in CLASS_ATTRS}
    steps |= {"edge_index": e, "edge_class": e, "edge_val": v}
    slices = {name: torch.arange(b + 1) * step for name, step in steps.items()}
    slices["meta"] = torch.arange(b + 1)
    incs: dict = {name: torch.zeros(b, dtype=torch.long) for name in steps}
    incs["edge_index"] = graphs * n
    incs["edge_class"] = graphs * c
    incs["meta"] = None
    batch._slice_dict, batch._inc_dict, batch._num_graphs = slices, incs, b
    return batch


def collate(graphs: Sequence[ParamGraph]) -> Batch:
    """`Batch.from_data_list` of heterogeneous graphs (any mix of architectures)."""
    return Batch.from_data_list([to_pyg(g) for g in graphs])
