"""networkx export of a parameter graph, for inspection and drawing."""
from __future__ import annotations

from .build import ParamGraph
from .vocab import EDGE_TYPES, NODE_TYPES


def to_networkx(graph: ParamGraph, values: bool = True):
    """A `networkx.MultiDiGraph`: nodes carry type/layer/pos/space, edges type/layer/width
    and (values=True) their value tuple. Parallel edges (q and k into one unit) are kept."""
    try:
        import networkx as nx
    except ImportError as err:
        raise ImportError("to_networkx needs networkx: pip install networkx") from err
    st = graph.structure
    g = nx.MultiDiGraph()
    ntype, nlayer, npos = st.node_type.tolist(), st.node_layer.tolist(), st.node_pos.tolist()
    for sp in st.spaces:
        for i in range(sp.start, sp.start + sp.size):
            g.add_node(i, type=NODE_TYPES[ntype[i]], layer=nlayer[i], pos=npos[i], space=sp.name)
    src, dst = st.edge_index.tolist()
    etype, elayer, width, off = (t.tolist() for t in (st.edge_type, st.edge_layer, st.edge_width, st.edge_off))
    flat = graph.values.tolist() if values else None
    for e in range(st.num_edges):
        attrs = dict(type=EDGE_TYPES[etype[e]], layer=elayer[e], width=width[e])
        if flat is not None:
            attrs["value"] = tuple(flat[off[e] : off[e] + width[e]])
        g.add_edge(src[e], dst[e], **attrs)
    return g
