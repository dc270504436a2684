"""`GraphMetaNet`: a learned optimizer's meta-network over the task model's parameter graph.

Lim et al., *Graph Metanetworks for Processing Diverse Neural Architectures* (ICLR
2024), used as the update network of a learned optimizer (UNF §4.2 style rule): the
task model becomes its parameter graph (`weightspace.graph.graph_structure`: units
are nodes, weights are edges), every edge reads the optimizer features of the values
it carries, edge-updating message passing (`weightspace.nn.gmn.EdgeMPNNLayer`) mixes
them along the network, and `weightspace.nn.gmn.EdgeHead` writes one output per
value, mapped back to the state dict by the graph's exact round trip
(`unflatten_values`).

The GMN's own `EdgeEncoder` lifts a single value channel per weight; an optimizer
reads C channels per weight (parameter, gradient, momenta, ...), so the edges here
are encoded by `FeatureEdgeEncoder` (one linear map per kernel width from the w·C
features of an edge's w values, plus the same categorical class embeddings). Every
part acts per node or per edge, with aggregations over neighbourhoods, so the update
commutes with the node relabelings the spec's permutations induce. The weights do
not depend on the architecture: any spec whose kernel widths are in `widths` works.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from ..graph import GraphStructure, graph_structure
from ..graph.vocab import EDGE_TYPES
from ..nn.gmn import EdgeMPNNLayer, GraphInputs
from ..nn.gmn.encoders import NodeEncoder, sinusoidal
from ..nn.gmn.heads import EdgeHead, unflatten_values
from ..spec import WeightSpec
from ..errors import ConfigError, LoptError
from . import graph_native
from .features import assemble
from .nets import Features, MetaNet, _check_channels


class FeatureEdgeEncoder(nn.Module):
    """Edge features from C feature channels per value: a linear map per width plus class embeddings.

    Args:
        in_channels: feature channels C per value.
        hidden: output features.
        widths: value widths (kernel sizes kh*kw; 1 for linear weights and biases) read.

    Shapes: `GraphInputs` and per-value features (V, C), laid out like `edge_val` -> (E, hidden).
    """

    def __init__(self, in_channels: int, hidden: int, widths: Iterable[int] = (1, 9)):
        super().__init__()
        self.widths = tuple(sorted({int(w) for w in widths if int(w) > 0}))
        if not self.widths:
            raise ConfigError("FeatureEdgeEncoder needs at least one positive edge width")
        self.in_channels, self.hidden = in_channels, hidden
        self.project = nn.ModuleDict({str(w): nn.Linear(w * in_channels, hidden) for w in self.widths})
        self.type_embed = nn.Embedding(len(EDGE_TYPES), hidden)
        self.layer = nn.Linear(hidden, hidden)
        self.shape = nn.Linear(3, hidden)

    def classes(self, g: GraphInputs) -> torch.Tensor:
        """The class embeddings (C, hidden) every edge of a class starts from."""
        dtype = self.shape.weight.dtype
        return (
            self.type_embed(g.class_type)
            + self.layer(sinusoidal(g.class_layer, self.hidden).to(dtype))
            + self.shape(torch.log1p(g.class_shape.to(dtype)))
        )

    def forward(self, g: GraphInputs, values: torch.Tensor) -> torch.Tensor:
        out = self.classes(g)[g.edge_class]
        for w, ids, where in g.width_slices():
            if w not in self.widths:
                raise LoptError(
                    f"the task model has edges carrying {w} values (a kernel of that size); this graph "
                    f"meta-network reads widths {self.widths} (build it with widths=...)"
                )
            rows = values[where]
            out = out.index_add(0, ids, self.project[str(w)](rows.reshape(ids.shape[0], -1)))
        return out

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, hidden={self.hidden}, widths={self.widths}"


class GraphMetaNet(MetaNet):
    """Feature edge encoder, node encoder, `layers` edge-updating MPNN layers, GMN per-edge head.

    Args:
        in_channels, hidden, layers, out_channels: feature channels C, hidden size,
            message-passing layers, outputs per value (1: the learned rule's f).
        widths: kernel widths the encoder and head read (default linear and 3x3).
        aggregators: of the MPNN layers.

    Shapes: input `key -> (B, C, *shape)` for every entry of `spec` (passed at call
    time, like `GroupContextMLP`); output `key -> (B, 1, *shape)`.

    Attribute `native` (default True): `forward_fused` runs the fused kernel of
    `weightspace.lopt.graph_native` where it applies (no gradient needed: the optimizer's
    step; float32, CPU); False keeps the torch path.
    """

    kind = "graph"

    def __init__(
        self,
        in_channels: int,
        hidden: int = 16,
        layers: int = 2,
        out_channels: int = 1,
        widths: Iterable[int] = (1, 9),
        aggregators: Sequence[str] = ("mean", "max"),
    ):
        super().__init__(in_channels, hidden, layers, out_channels)
        if out_channels != 1:
            raise ConfigError(f"GraphMetaNet writes one output per value (out_channels=1), got {out_channels}")
        self.edges = FeatureEdgeEncoder(in_channels, hidden, widths)
        self.widths = self.edges.widths
        self.aggregators = tuple(aggregators)
        self.nodes = NodeEncoder(hidden)
        self.trunk = nn.ModuleList(EdgeMPNNLayer(hidden, self.aggregators) for _ in range(layers))
        self.head = EdgeHead(hidden, self.widths)
        self._graphs: dict[tuple, tuple[WeightSpec, GraphStructure, GraphInputs]] = {}
        self.native = True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()
        for proj in self.head.project.values():
            self.reset_head(proj)

    def config(self) -> dict:
        return {**super().config(), "widths": list(self.widths), "aggregators": list(self.aggregators)}

    def graph(self, spec: WeightSpec, keys: list[str], batch: int, dtype: torch.dtype) -> tuple[GraphStructure, GraphInputs]:
        """The parameter-graph structure of `spec` and a batch of `batch` of its graphs (cached)."""
        cache_key = (id(spec), tuple(keys), batch, dtype)
        hit = self._graphs.get(cache_key)
        if hit is None:
            missing = [k for k in keys if k not in spec.entries]
            if missing or len(keys) != len(spec.entries):
                raise LoptError(
                    f"GraphMetaNet: features of {list(keys)[:6]} and spec entries {list(spec.entries)[:6]} "
                    "differ; pass the spec restricted to the optimized parameters (prepare_spec)"
                )
            structure = graph_structure(spec, dtypes={k: dtype for k in spec.entries})
            hit = (spec, structure, GraphInputs.from_values(structure, torch.zeros(batch, structure.num_values, dtype=dtype)))
            self._graphs[cache_key] = hit
        return hit[1], hit[2]

    @staticmethod
    def value_features(structure: GraphStructure, x: Features) -> torch.Tensor:
        """Per-value features (B * V, C) laid out like a batch's `edge_val` (graph-major)."""
        parts = []
        for e in structure.entries:
            if not e.carried:
                continue
            t = x[e.key]
            order = (0, 1, *(2 + i for i in e.order))
            parts.append(t.permute(order).reshape(t.shape[0], t.shape[1], e.numel))
        flat = torch.cat(parts, dim=-1)
        return flat.transpose(1, 2).reshape(-1, flat.shape[1])

    def forward(self, x: Features, spec: WeightSpec | None = None) -> Features:
        if spec is None:
            raise LoptError("GraphMetaNet needs the task model's spec (pass spec=...)")
        _check_channels(x, self.in_channels, type(self).__name__)
        first = next(iter(x.values()))
        structure, g = self.graph(spec, list(x), first.shape[0], first.dtype)
        h = self.nodes(g)
        e = self.edges(g, self.value_features(structure, x))
        for layer in self.trunk:
            h, e = layer(h, e, g.edge_index)
        values = self.head(h, e, g).reshape(first.shape[0], structure.num_values)
        return {k: t.unsqueeze(1) for k, t in unflatten_values(structure, values).items()}

    def forward_fused(
        self, raw: Features, inv_rms: Features, time: Features, spec: WeightSpec | None = None
    ) -> Features:
        """`forward` of one unbatched step from `raw_features` (see `MetaNet`); output key -> (*shape).

        Without a gradient to track (the optimizer's step), float32 on CPU, the fused kernel
        (`graph_native`); otherwise `forward` on the assembled features."""
        if spec is None:
            raise LoptError("GraphMetaNet needs the task model's spec (pass spec=...)")
        if graph_native.supported(self, raw):
            structure, g = self.graph(spec, list(raw), 1, torch.float32)
            return graph_native.forward(self, structure, g, raw, inv_rms, time)
        x = {k: assemble(r, inv_rms[k], time[k]).unsqueeze(0) for k, r in raw.items()}
        return {k: v[0, 0] for k, v in self.forward(x, spec).items()}

    def __repr__(self) -> str:
        return (
            f"GraphMetaNet({self.in_channels} -> {self.hidden} x {self.layers} MPNN -> {self.out_channels}, "
            f"widths={self.widths})"
        )
