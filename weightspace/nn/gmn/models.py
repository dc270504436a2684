"""Graph metanetworks: encoders, a stack of message-passing or relational-transformer
layers, and heads (Lim et al., "Graph Metanetworks for Processing Diverse Neural
Architectures", ICLR 2024; Kofinas et al., ICLR 2024).

One model reads any architecture: it takes parameter-graph batches
(`GraphInputs`, e.g. `WeightSpaceBatch.graph(structure)` for many networks of one
architecture, or an exported PyG batch such as `weightspace.graph.pyg.collate` of
mixed architectures), never a spec. Every layer acts per node and per edge with
aggregations over neighbourhoods and graphs, so graph-level outputs are invariant
and per-node/per-edge outputs equivariant under the networks' permutation symmetries.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from .encoders import EdgeEncoder, NodeEncoder
from ...errors import GMNError
from .heads import EdgeHead, InvariantReadout, NodeHead, stacked_state_dict, values_to_state_dicts
from .inputs import GraphInputs, graph_inputs
from .mpnn import EdgeMPNNLayer
from .probes import ProbeFeatures
from .transformer import RelationalTransformerLayer

KINDS = ("mpnn", "transformer")


class GraphMetaNetwork(nn.Module):
    """The trunk: node/edge encoders (plus optional probe features) and `layers` layers.

    Args:
        hidden: node and edge feature size.
        layers: number of message-passing / attention layers.
        kind: "mpnn" (`EdgeMPNNLayer`) or "transformer" (`RelationalTransformerLayer`).
        edge_widths: the kernel widths the encoder reads (`encoders.edge_widths(structures)`).
        heads: attention heads (transformer); aggregators: of the MPNN.
        num_freqs, fourier_scale: random Fourier features of the values.
        probes: `ProbeFeatures` modules (one per architecture) whose outputs are added to the nodes.
        dropout: inside the layers.
        chunk_size: edges per chunk of the encoder and layers (`weightspace.nn.gmn.stream`: bounded
            memory on graphs of millions of edges; None: auto from `stream.MEMORY_BUDGET`).

    Shapes: a graph batch -> (h (N, hidden), e (E, hidden), `GraphInputs`).
    """

    def __init__(
        self,
        hidden: int = 64,
        layers: int = 4,
        kind: str = "mpnn",
        *,
        edge_widths: Iterable[int] = (1, 9),
        heads: int = 4,
        aggregators: Sequence[str] = ("mean", "max", "std"),
        num_freqs: int = 16,
        fourier_scale: float = 2.0,
        probes: Sequence[ProbeFeatures] = (),
        dropout: float = 0.0,
        chunk_size: int | None = None,
    ):
        super().__init__()
        if kind not in KINDS:
            raise GMNError(f"unknown kind {kind!r}; expected one of {KINDS}")
        if layers < 1 or hidden < 1:
            raise GMNError(f"layers={layers} and hidden={hidden} must be >= 1")
        self.hidden, self.kind = hidden, kind
        self.nodes = NodeEncoder(hidden)
        self.edges = EdgeEncoder(hidden, edge_widths, num_freqs, fourier_scale, chunk_size=chunk_size)
        self.probes = nn.ModuleList(probes)
        for p in self.probes:
            if p.project.out_features != hidden:
                raise GMNError(f"probe features have {p.project.out_features} outputs, the network {hidden}")
        if kind == "mpnn":
            self.layers = nn.ModuleList(EdgeMPNNLayer(hidden, aggregators, dropout, chunk_size) for _ in range(layers))
        else:
            self.layers = nn.ModuleList(
                RelationalTransformerLayer(hidden, heads, dropout=dropout, chunk_size=chunk_size)
                for _ in range(layers)
            )

    @property
    def edge_widths(self) -> tuple[int, ...]:
        return self.edges.widths

    @property
    def reading_size(self) -> int:
        """Width of the probes' invariant readings (the largest over architectures; 0 without probes)."""
        return max((p.reading_size for p in self.probes), default=0)

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor, GraphInputs]:
        h, e, g, _ = self.encode(batch)
        return h, e, g

    def encode(self, batch) -> tuple[torch.Tensor, torch.Tensor, GraphInputs, torch.Tensor]:
        """`forward` plus the probes' invariant readings (G, reading_size), zero-padded per architecture."""
        g = batch if isinstance(batch, GraphInputs) else graph_inputs(batch)
        h = self.nodes(g)
        readings = g.edge_val.new_zeros(g.num_graphs, self.reading_size).to(h.dtype)
        for p in self.probes:
            feats, r = p.read(g)
            h = h + feats
            readings[:, : r.shape[1]] += r
        e = self.edges(g)
        for layer in self.layers:
            h, e = layer(h, e, g.edge_index)
        return h, e, g, readings


class GMNClassifier(nn.Module):
    """Invariant graph metanetwork: trunk + `InvariantReadout` (classification or regression).

    Args: out (classes or targets per graph); read_probes: also feed the probes'
    invariant readings (the function at the probe inputs) to the readout; the rest as
    in `GraphMetaNetwork`.
    Shapes: a batch of G graphs -> (G, out).
    """

    def __init__(self, out: int, hidden: int = 64, layers: int = 4, kind: str = "mpnn", *,
                 read_probes: bool = False, chunk_size: int | None = None, **kwargs):
        super().__init__()
        self.trunk = GraphMetaNetwork(hidden, layers, kind, chunk_size=chunk_size, **kwargs)
        extra = self.trunk.reading_size if read_probes else 0
        if read_probes and not extra:
            raise GMNError("read_probes needs probe features on an architecture with fixed output units")
        self.read_probes = read_probes
        self.readout = InvariantReadout(hidden, out, extra=extra, chunk_size=chunk_size)

    def forward(self, batch) -> torch.Tensor:
        h, e, g, readings = self.trunk.encode(batch)
        return self.readout(h, e, g, readings if self.read_probes else None)


class GMNEquivariant(nn.Module):
    """Equivariant graph metanetwork: one output per input weight value (and per node).

    `forward` gives the flat value vector (V,) laid out like the batch's `edge_val`
    and, with node_out > 0, per-node outputs (N, node_out). `state_dicts` /
    `stacked` map the values back to state dicts (weight editing, learned optimizers).
    """

    def __init__(self, hidden: int = 64, layers: int = 4, kind: str = "mpnn", node_out: int = 0, *,
                 chunk_size: int | None = None, **kwargs):
        super().__init__()
        self.trunk = GraphMetaNetwork(hidden, layers, kind, chunk_size=chunk_size, **kwargs)
        self.edge_head = EdgeHead(hidden, self.trunk.edge_widths, chunk_size)
        self.node_head = NodeHead(hidden, node_out) if node_out > 0 else None

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor | None, GraphInputs]:
        h, e, g = self.trunk(batch)
        nodes = self.node_head(h) if self.node_head is not None else None
        return self.edge_head(h, e, g), nodes, g

    def state_dicts(self, batch) -> list[dict[str, torch.Tensor]]:
        """One predicted state dict per graph of any batch."""
        values, _, g = self(batch)
        return values_to_state_dicts(g, values)

    def stacked(self, batch) -> dict[str, torch.Tensor]:
        """Predicted stacked state dict key -> (G, *shape) of a one-architecture batch."""
        values, _, g = self(batch)
        return stacked_state_dict(g, values)
