"""Shared pieces of the ScaleGMN tests: specs with sign/scale symmetries as float64 graph
structures, and output specs that carry the extra action onto hidden node and edge features."""
from __future__ import annotations

import functools
from math import prod

import torch

from tests.nn.specs import extra_spec
from weightspace.graph import graph_structure
from weightspace.nn import WeightSpaceBatch
from weightspace.nn.gmn import ScaleGMNClassifier, edge_widths
from weightspace.nn.gmn.heads import node_space_outputs, node_space_spec
from weightspace.spec import Entry, ExtraAction, Factor, Group, WeightSpec

ARCHS = ("siren", "mlp", "cnn")
KIND = {"siren": "sign", "mlp": "scale", "cnn": "scale"}
TOL = dict(rtol=1e-6, atol=1e-9, n_trials=2)


@functools.lru_cache(maxsize=None)
def spec_and_structure(arch: str):
    """(spec, float64 structure): "siren" (sine: signs), "mlp" and "cnn" (ReLU: scales), parsed and verified."""
    spec = extra_spec(arch)
    return spec, graph_structure(spec, {k: torch.float64 for k in spec.entries})


def as_batch(structure, stacked):
    return WeightSpaceBatch.from_stacked(structure.spec, stacked).graph(structure)


def classifier(structure, seed: int = 0) -> ScaleGMNClassifier:
    torch.manual_seed(seed)
    return ScaleGMNClassifier(3, hidden=8, layers=2, edge_widths=edge_widths(structure)).double()


def _edge_unit_axes(layout) -> list[int]:
    """The axes of an entry whose indices name its edges (a prefix of the layout order)."""
    n = 0
    while prod(layout.shape[i] for i in layout.order[:n]) != layout.edge_count:
        n += 1
    return list(layout.order[:n])


def feature_spec(structure, k: int) -> WeightSpec:
    """The spec of the trunk's hidden features as tensors (`features`): `node:<space>` (size, k) and
    `edge:<key>` (*unit dims, k), with the input spec's groups AND their extra actions: a node's
    features move by its unit's multiplier, an edge's like the weight it carries."""
    spec = structure.spec
    nodes = node_space_spec(structure, k)
    entries = {f"node:{key}": Entry(f"node:{key}", e.shape, e.axes) for key, e in nodes.entries.items()}
    actions: dict[str, list[ExtraAction]] = {n: [] for n, g in spec.groups.items() if g.extra}
    for key, e in nodes.entries.items():
        for name in actions:
            if any(f.group == name for f in e.axes[0]):
                actions[name].append(ExtraAction(f"node:{key}", 0, 1))
    for layout in structure.entries:
        if not layout.carried:
            continue
        axes = _edge_unit_axes(layout)
        entry = spec.entries[layout.key]
        out = f"edge:{layout.key}"
        entries[out] = Entry(out, (*(entry.shape[i] for i in axes), k), (*(entry.axes[i] for i in axes),
                                                                          (Factor(None, k),)))
        for name in actions:
            actions[name] += [ExtraAction(out, axes.index(a.axis), a.power) for a in spec.groups[name].extra_action
                              if a.key == layout.key and a.axis in axes]
    groups = {n: Group(n, g.size, g.kind, g.extra if n in actions else (), tuple(actions.get(n, ())))
              for n, g in spec.groups.items()}
    return WeightSpec(entries, groups)


def features(trunk, structure):
    """Stacked state dict -> the trunk's node and edge features laid out as `feature_spec`."""

    def fn(sd):
        x, e, g, _ = trunk(as_batch(structure, sd))
        b = g.num_graphs
        nodes = node_space_outputs(structure, x.reshape(b, structure.num_nodes, -1))
        out = {f"node:{key}": v for key, v in nodes.items()}
        e = e.reshape(b, structure.num_edges, -1)
        for layout in structure.entries:
            if layout.carried:
                dims = [layout.shape[i] for i in _edge_unit_axes(layout)]
                rows = e[:, layout.edge_start : layout.edge_start + layout.edge_count]
                out[f"edge:{layout.key}"] = rows.reshape(b, *dims, -1)
        return out

    return fn
