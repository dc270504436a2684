"""Shared helpers for the graph tests: one trace per catalog architecture, and a
canonical form of a graph's edge multiset under a node relabeling."""
from __future__ import annotations

import functools
import warnings

import torch

from tests.parser.architectures import CATALOG, by_name
from weightspace.graph import ParamGraph, build_graph
from weightspace.graph.build import edge_buckets
from weightspace.parser import parse_model

NAMES = [a.name for a in CATALOG]


@functools.lru_cache(maxsize=None)
def traced(name: str):
    """(model, spec, roles) of a catalog architecture, traced once per test session.

    The spec is the parser's maximal spec from the same trace (no numerical
    verification here: tests/parser checks that the maximal spec verifies).
    """
    arch = by_name(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, inputs = arch.build()
        parsed = parse_model(model, inputs, verify=False)
    return model, parsed.spec, parsed.roles


def graph_of(name: str) -> tuple[ParamGraph, dict]:
    model, spec, roles = traced(name)
    sd = model.state_dict()
    return build_graph(spec, sd, roles), sd


def edge_multiset(graph: ParamGraph, sigma: torch.Tensor | None = None) -> list[tuple]:
    """Sorted (src, dst, type, layer, width, kernel shape, values...) rows, endpoints mapped by sigma."""
    st = graph.structure
    ends = st.edge_index if sigma is None else sigma[st.edge_index]
    widest = int(st.edge_width.max()) if st.num_edges else 0
    feats = torch.full((st.num_edges, widest), float("nan"), dtype=torch.float64)
    for w, ids, where in edge_buckets(st.edge_width, st.edge_off):
        feats[ids, :w] = graph.values[where].double()
    cols = [ends.T, st.edge_type[:, None], st.edge_layer[:, None], st.edge_width[:, None], st.edge_shape]
    rows = torch.cat([c.double() for c in cols] + [feats.nan_to_num(float("inf"))], dim=1)
    return sorted(map(tuple, rows.tolist()))


def node_features(graph: ParamGraph) -> torch.Tensor:
    st = graph.structure
    return torch.stack([st.node_type, st.node_layer, st.node_pos], dim=1)
