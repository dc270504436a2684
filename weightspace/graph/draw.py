"""A matplotlib picture of a small network's parameter graph: nodes in columns by
layer, coloured by type; edges coloured by sign and shaded by magnitude."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch

from .build import ParamGraph
from ..errors import GraphError
from .vocab import EDGE_TYPE, NODE_TYPES

MAX_NODES = 2000


def draw(graph: ParamGraph, path: str | Path, title: str = "") -> Path:
    """Save a picture of `graph` to `path` (png/pdf/svg by suffix); returns the path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.collections import LineCollection
    except ImportError as err:
        raise ImportError("draw needs matplotlib: pip install matplotlib") from err
    st = graph.structure
    if st.num_nodes > MAX_NODES:
        raise GraphError(f"the graph has {st.num_nodes} nodes; draw() pictures up to {MAX_NODES}")
    xy = torch.zeros(st.num_nodes, 2)
    columns: dict[int, list[int]] = defaultdict(list)
    for sp in st.spaces:
        columns[3 * sp.layer + (sp.type in ("mixed", "product")) + 2 * (sp.type == "param")].extend(range(sp.start, sp.start + sp.size))
    for col, nodes in columns.items():
        xy[nodes, 0] = float(col)
        xy[nodes, 1] = torch.linspace(-1, 1, len(nodes)) if len(nodes) > 1 else torch.zeros(1)
    fig, ax = plt.subplots(figsize=(max(6, len(columns)), 6))
    weight = (st.edge_type != EDGE_TYPE["member"]).nonzero().flatten()
    first = graph.values[st.edge_off[weight].clamp(max=max(graph.values.numel() - 1, 0))].float() if weight.numel() else torch.zeros(0)
    scale = first.abs().max().clamp(min=1e-12) if first.numel() else torch.tensor(1.0)
    segments = xy[st.edge_index[:, weight].T].numpy()
    colors = [(0.8, 0.1, 0.1, a) if v > 0 else (0.1, 0.2, 0.8, a) for v, a in
              zip(first.tolist(), (0.05 + 0.6 * first.abs() / scale).tolist())]
    ax.add_collection(LineCollection(segments, colors=colors, linewidths=0.5))
    member = (st.edge_type == EDGE_TYPE["member"]).nonzero().flatten()
    if member.numel():
        ax.add_collection(LineCollection(xy[st.edge_index[:, member].T].numpy(), colors="0.6", linestyles="dotted", linewidths=0.5))
    cmap = plt.get_cmap("tab20")
    for t in st.node_type.unique().tolist():
        mask = st.node_type == t
        ax.scatter(xy[mask, 0], xy[mask, 1], s=12, color=cmap(t % 20), label=NODE_TYPES[t], zorder=3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.set_title(title or repr(graph))
    ax.set_axis_off()
    path = Path(path)
    fig.savefig(path, bbox_inches="tight", dpi=120)
    plt.close(fig)
    return path
