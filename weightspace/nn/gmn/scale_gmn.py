"""ScaleGMN: a graph metanetwork equivariant to permutations and to the spec's sign flips
and positive scalings (Kalogeropoulos et al., "Scale Equivariant Graph Metanetworks",
NeurIPS 2024).

Which units carry a sign or a scale comes from the spec's `extra_action`
(`charges.charges_of`), never from the architecture's name. Inputs:

- edges: each edge's values through a linear map without bias (per kernel width), times
  an invariant embedding of its class (type, layer, kernel shape), so an edge's features
  move exactly as its values (q_head / q_tail);
- nodes: charged units start at 0 (their biases arrive as the first layer's messages
  from the param nodes); uncharged nodes (inputs, outputs, param nodes) start from their
  invariant embedding (type, layer, position: `encoders.NodeEncoder`).

Then `ScaleMPNNLayer`s, and for classification `InvariantReadout` on the invariants ρ of
the final node and edge features (|.|-like for signs, canonical direction for scales),
so the logits are invariant to permutations, signs and scales alike.

Feed weights as they are or divided by a positive number per entry (e.g. the training
std, `tasks.inr_classify`'s `_scaled`): centring or Fourier features would break the
sign/scale action.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ...errors import GMNError
from ...graph.vocab import EDGE_TYPES
from .charges import Charges, batch_charges
from .encoders import NodeEncoder, sinusoidal
from .heads import InvariantReadout
from .inputs import GraphInputs, graph_inputs
from .scale_mpnn import ChargeInvariant, ScaleMPNNLayer


class ChargedEdgeEncoder(nn.Module):
    """Edge features that move as the edge's values k: W_w k ⊙ (1 + class embedding + ρ_w(k)).

    W_w has no bias and ρ_w is invariant (`ChargeInvariant`: even in k under a sign, a function of
    k / |k| under a scale), so the product moves exactly as k; ρ_w(k) makes the features more than a
    multiple of k (a sign-flipping weight's |w| survives the layers' RMS normalization).

    Shapes: `GraphInputs`, `Charges` -> (features (E, hidden), class context (C, hidden))."""

    def __init__(self, hidden: int, widths: Iterable[int]):
        super().__init__()
        self.widths = tuple(sorted({int(w) for w in widths if int(w) > 0}))
        if not self.widths:
            raise GMNError("ChargedEdgeEncoder needs at least one positive edge width")
        self.lift = nn.ModuleDict({str(w): nn.Linear(w, hidden, bias=False) for w in self.widths})
        self.rho = nn.ModuleDict({str(w): ChargeInvariant(w, hidden) for w in self.widths})
        self.type_embed = nn.Embedding(len(EDGE_TYPES), hidden)
        self.layer = nn.Linear(hidden, hidden)
        self.shape = nn.Linear(3, hidden)
        self.hidden = hidden

    def forward(self, g: GraphInputs, q: Charges) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = self.layer.weight.dtype
        classes = (self.type_embed(g.class_type) + self.layer(sinusoidal(g.class_layer, self.hidden).to(dtype))
                   + self.shape(torch.log1p(g.class_shape.to(dtype))))
        context = classes.index_select(0, g.edge_class)
        out = classes.new_zeros(g.num_edges, self.hidden)
        for w, ids, where in g.width_slices():
            if w not in self.widths:
                raise GMNError(f"the batch has edges carrying {w} values; this encoder reads widths {self.widths}")
            k = g.edge_val[where].to(dtype)
            inv = self.rho[str(w)](k, q.edge_sign[ids], q.edge_scale[ids])
            out = out.index_put((ids,), self.lift[str(w)](k) * (1 + inv + context[ids]))
        return out, classes

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, widths={self.widths}"


class ScaleGMN(nn.Module):
    """The trunk: encoders and `layers` `ScaleMPNNLayer`s.

    Args: hidden (node and edge feature size), layers, edge_widths (the kernel widths read,
    `encoders.edge_widths(structure)`).

    Shapes: a graph batch (`GraphInputs` or an exported PyG batch) -> (x (N, hidden),
    e (E, hidden), `GraphInputs`, `Charges`), x moving as q_node x, e as (q_head / q_tail) e.
    """

    def __init__(self, hidden: int = 32, layers: int = 3, *, edge_widths: Iterable[int] = (1,)):
        super().__init__()
        if layers < 1 or hidden < 1:
            raise GMNError(f"layers={layers} and hidden={hidden} must be >= 1")
        self.hidden = hidden
        self.nodes = NodeEncoder(hidden)
        self.edges = ChargedEdgeEncoder(hidden, edge_widths)
        self.layers = nn.ModuleList(ScaleMPNNLayer(hidden, hidden) for _ in range(layers))

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor, GraphInputs, Charges]:
        g = batch if isinstance(batch, GraphInputs) else graph_inputs(batch)
        q = batch_charges(g)
        node_context = self.nodes(g)
        x = node_context * ~q.charged[:, None]
        e, class_context = self.edges(g, q)
        for layer in self.layers:
            x, e = layer(x, e, node_context, class_context, g.edge_class, q)
        return x, e, g, q


class ScaleGMNClassifier(nn.Module):
    """Invariant ScaleGMN: trunk, invariants ρ of the final node and edge features, `InvariantReadout`.

    Args: out (classes or targets per graph); hidden, layers, edge_widths as in `ScaleGMN`.
    Shapes: a batch of G graphs -> (G, out), invariant to permutations, signs and scales.
    """

    def __init__(self, out: int, hidden: int = 32, layers: int = 3, *, edge_widths: Iterable[int] = (1,)):
        super().__init__()
        self.trunk = ScaleGMN(hidden, layers, edge_widths=edge_widths)
        self.rho_node = ChargeInvariant(hidden, hidden)
        self.rho_edge = ChargeInvariant(hidden, hidden)
        self.readout = InvariantReadout(hidden, out)

    def forward(self, batch) -> torch.Tensor:
        x, e, g, q = self.trunk(batch)
        return self.readout(self.rho_node(x, q.sign, q.scale), self.rho_edge(e, q.edge_sign, q.edge_scale), g)
