"""Input encoders of the graph metanetworks: node and edge features from a graph batch.

Scalars (weights, kernels) are lifted with random Fourier features
(`weightspace.nn.FourierFeatures.gaussian`), as in Graph Metanetworks (Lim et al.,
ICLR 2024) and neural graphs (Kofinas et al., ICLR 2024).
Edges carry kernels of different sizes (width 1 for a linear weight or a bias, 9 for
a 3x3 conv), so each width has its own Fourier map and projection; the categorical
features (node/edge type, layer index, fixed input/output position, kernel shape)
are embeddings. None of these features tells interchangeable units apart, so the
encoders are equivariant to the node relabelings of the network's symmetries.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from ...graph.vocab import EDGE_TYPES, NODE_TYPES
from ...errors import GMNError
from ..fourier import FourierFeatures
from . import native
from .inputs import GraphInputs
from .stream import check_chunk_size, edge_chunks, run_chunks


def sinusoidal(x: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer position encoding of integer indices: (n,) -> (n, dim), any index range."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device) / max(half, 1))
    angles = x.to(freqs.dtype)[:, None] * freqs[None]
    parts = [torch.sin(angles), torch.cos(angles)]
    if dim % 2:
        parts.append(torch.zeros_like(angles[:, :1]))
    return torch.cat(parts, dim=1)


class EdgeEncoder(nn.Module):
    """Edge features: Fourier features of the edge's values, projected per width bucket,
    plus embeddings of its type, layer and kernel shape.

    Args:
        hidden: output features.
        widths: the value widths (kernel sizes kh*kw; 1 for linear weights and vectors)
            this encoder reads; edges of width 0 (structural `member` edges) carry none.
            A batch with another width raises GMNError (see `edge_widths`).
        num_freqs, scale: of the Fourier features.
        normalize: divide each entry's values by their root mean square within the graph
            (a statistic of the whole entry, so invariant) before the Fourier features,
            and embed its log; weights of different layers live at very different scales.
        chunk_size: edges per chunk of the Fourier features (`weightspace.nn.gmn.stream`; None: auto).

    On CPU the whole per-edge part runs fused (`weightspace.nn.gmn.native.encode`, where it applies:
    values that need no gradient; `native = False` switches it off), else in chunks.

    Shapes: `GraphInputs` -> (E, hidden).
    """

    def __init__(
        self, hidden: int, widths: Iterable[int] = (1, 9), num_freqs: int = 16, scale: float = 2.0,
        normalize: bool = True, chunk_size: int | None = None,
    ):
        super().__init__()
        self.widths = tuple(sorted({int(w) for w in widths if int(w) > 0}))
        if not self.widths:
            raise GMNError("EdgeEncoder needs at least one positive edge width")
        self.fourier = nn.ModuleDict({str(w): FourierFeatures.gaussian(w, num_freqs, scale) for w in self.widths})
        self.project = nn.ModuleDict(
            {str(w): nn.Linear(self.fourier[str(w)].out_features, hidden) for w in self.widths}
        )
        self.type_embed = nn.Embedding(len(EDGE_TYPES), hidden)
        self.layer = nn.Linear(hidden, hidden)
        self.shape = nn.Linear(3, hidden)
        self.scale = nn.Linear(1, hidden)
        self.hidden, self.normalize = hidden, normalize
        self.chunk_size = check_chunk_size(chunk_size)
        self.native = True

    @staticmethod
    def class_rms(g: GraphInputs) -> torch.Tensor:
        """(C,) root mean square of the values each edge class (one entry of one graph) carries."""
        width = g.class_width[g.edge_class].to(g.edge_val.dtype)
        edge_sq = torch.zeros_like(width).index_add(
            0, torch.repeat_interleave(torch.arange(g.num_edges, device=width.device), g.edge_width), g.edge_val ** 2
        )
        sq = torch.zeros(g.class_width.shape[0], dtype=width.dtype, device=width.device)
        count = sq.index_add(0, g.edge_class, width)
        sq = sq.index_add(0, g.edge_class, edge_sq)
        return torch.sqrt(sq / count.clamp(min=1) + 1e-12).detach() * (count > 0) + (count == 0)

    def _values(self, c: slice, key: str, ids, where, edge_val, edge_class, rms) -> torch.Tensor:
        """Projected Fourier features of one chunk of one width's edges."""
        vals = edge_val[where[c]].to(rms.dtype) / rms[edge_class[ids[c]], None]
        return self.project[key](self.fourier[key](vals))

    def forward(self, g: GraphInputs) -> torch.Tensor:
        dtype = self.shape.weight.dtype
        fused = native.encode_supported(self, g.edge_val) and g.num_edges > 0
        rms = native.class_rms(g) if fused else None
        rms = (self.class_rms(g) if rms is None else rms).to(dtype)
        classes = (
            self.type_embed(g.class_type)
            + self.layer(sinusoidal(g.class_layer, self.hidden).to(dtype))
            + self.shape(torch.log1p(g.class_shape.to(dtype)))
            + self.scale(torch.log(rms)[:, None])
        )
        if not self.normalize:
            rms = torch.ones_like(rms)
        widths = [w for w in torch.unique(g.class_width).tolist() if w > 0]
        unknown = [w for w in widths if w not in self.widths]
        if unknown:
            raise GMNError(
                f"the batch has edges carrying {unknown[0]} values (a kernel of that size); this encoder reads widths "
                f"{self.widths}. Build the model with edge_widths(...) of your structures."
            )
        if fused:
            buckets = [(w, torch.nonzero(g.edge_width == w).flatten()) for w in widths]
            return native.encode(self, classes, g.edge_val, g.edge_off, g.edge_class, rms, buckets)
        out = classes.index_select(0, g.edge_class)
        for w, ids, where in g.width_slices():
            chunks = edge_chunks(ids.shape[0], self.chunk_size, self.hidden, dtype)
            pieces = run_chunks(self._values, chunks, (), str(w), ids, where, g.edge_val, g.edge_class, rms)
            for c, piece in zip(chunks, pieces):
                out.index_add_(0, ids[c], piece)
        return out

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, widths={self.widths}"


class NodeEncoder(nn.Module):
    """Node features: embeddings of node type, layer index and fixed input/output position.

    Units of a permutation group have no position (-1) and get one learned vector;
    fixed units (input pixels, logits) get a sinusoidal code of their position.

    Shapes: `GraphInputs` -> (N, hidden).
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.type_embed = nn.Embedding(len(NODE_TYPES), hidden)
        self.layer = nn.Linear(hidden, hidden)
        self.pos = nn.Linear(hidden, hidden)
        self.no_pos = nn.Parameter(torch.zeros(hidden))
        self.hidden = hidden

    def forward(self, g: GraphInputs) -> torch.Tensor:
        dtype = self.layer.weight.dtype
        fixed = (g.node_pos >= 0)[:, None]
        pos = torch.where(fixed, self.pos(sinusoidal(g.node_pos.clamp(min=0), self.hidden).to(dtype)), self.no_pos)
        return self.type_embed(g.node_type) + self.layer(sinusoidal(g.node_layer, self.hidden).to(dtype)) + pos

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}"


def edge_widths(*structures) -> tuple[int, ...]:
    """The positive value widths of the given `GraphStructure`s (for `EdgeEncoder(widths=...)`)."""
    found: set[int] = set()
    for s in structures:
        found |= set(s.class_width.unique().tolist())
    return tuple(sorted(w for w in found if w > 0))
