"""Which nodes of a parameter graph carry a sign or scale, read off the spec's `extra_action`.

ScaleGMN (Kalogeropoulos et al., "Scale Equivariant Graph Metanetworks", NeurIPS 2024)
gives every hidden unit i a multiplier q_i: a sign s_i = ±1 before an odd activation
(sin, tanh), a scale q_i > 0 before a ReLU. A weight w_ij from unit j into unit i
becomes q_i w_ij / q_j, a bias b_i becomes q_i b_i. On the parameter graph
(`weightspace.graph`) every edge runs from its input unit (src) to its output unit
(dst), so each value moves by q_dst / q_src, where fixed units (inputs, outputs) and
param nodes (one per bias) have q = 1.

`charges_of` checks that the spec's extra actions are exactly of that form, edge by
edge: an action of group g with power +1 (-1) on an entry's axis must land on the dst
(src) node of each of the entry's edges that the index along that axis names, and
every edge touching a charged node must carry that node's multiplier. That holds for
MLPs, SIRENs and plain conv chains (also through a flatten: a (channel, pixel) node
carries its channel's multiplier). Specs where it fails (BatchNorm's affine
parameters carry the multiplier while the running statistics do not; a recurrence)
raise ConfigError rather than give a layer that is wrongly claimed equivariant.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from math import prod

import torch

from ...errors import ConfigError
from ...graph.structure import GraphStructure, unravel
from .inputs import GraphInputs

KINDS = ("sign", "scale")

_CACHE: "weakref.WeakKeyDictionary[GraphStructure, Charges]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Charges:
    """Per-node multiplier kinds of graphs: sign (N,) and scale (N,) bool, at most one per node.

    `oriented` (2, E): each edge as (tail, head) such that its values move by q_head / q_tail
    (the graph's (src, dst), or reversed where the graph reads a weight from its output
    side). `edge_sign` / `edge_scale` (E,): whether an edge's values move by a sign / a
    positive scale (one of its endpoints carries one)."""

    sign: torch.Tensor
    scale: torch.Tensor
    oriented: torch.Tensor
    edge_sign: torch.Tensor
    edge_scale: torch.Tensor

    @property
    def charged(self) -> torch.Tensor:
        """(N,) nodes whose features move with a multiplier."""
        return self.sign | self.scale


def _node_units(structure: GraphStructure) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(group id (N,) or -1, unit index in that group (N,), the groups with an extra symmetry)."""
    spec = structure.spec
    extra = [n for n, g in spec.groups.items() if g.extra]
    for n in extra:
        if len(spec.groups[n].extra) > 1:
            raise ConfigError(f"group {n!r} declares {spec.groups[n].extra}; one extra symmetry per group is supported")
    group = torch.full((structure.num_nodes,), -1, dtype=torch.long)
    unit = torch.zeros(structure.num_nodes, dtype=torch.long)
    for sp in structure.spaces:
        found = [j for j, f in enumerate(sp.factors) if f.group in extra]
        if len(found) > 1:
            raise ConfigError(f"node space {sp.name!r} carries two extra symmetries; not supported")
        if found:
            coords = unravel(sp.size, tuple(f.size for f in sp.factors))
            group[sp.start : sp.start + sp.size] = extra.index(sp.factors[found[0]].group)
            unit[sp.start : sp.start + sp.size] = coords[:, found[0]]
    return group, unit, extra


def _edge_units(structure: GraphStructure, key: str, axis: int, group: str) -> torch.Tensor:
    """Index of `group`'s unit along `key`'s `axis`, for each edge of `key` (n_edges,)."""
    entry, layout = structure.spec.entries[key], structure.entry(key)
    sizes = entry.factored_shape
    dim = sum(len(a) for a in entry.axes[:axis]) + [f.group for f in entry.axes[axis]].index(group)
    index = unravel(prod(sizes), sizes)[:, dim].reshape(entry.shape).permute(layout.order)
    index = index.reshape(-1, max(layout.width, 1))
    if not bool((index == index[:, :1]).all()):
        raise ConfigError(f"the extra symmetry of {group!r} acts on the values inside one edge of {key!r}")
    return index[:, 0]


def charges_of(structure: GraphStructure) -> Charges:
    """The `Charges` of one structure, checked against its spec's extra actions (module doc)."""
    spec = structure.spec
    group, unit, extra = _node_units(structure)
    ends = structure.edge_index  # [src, dst]
    power = torch.zeros(2, structure.num_edges, dtype=torch.long)  # exponent at [src, dst]
    for gi, name in enumerate(extra):
        for act in spec.groups[name].extra_action:
            layout = structure.entry(act.key)
            if not layout.carried:
                continue
            edges = torch.arange(layout.edge_start, layout.edge_start + layout.edge_count)
            u = _edge_units(structure, act.key, act.axis, name)
            hit = torch.stack([(group[e[edges]] == gi) & (unit[e[edges]] == u) for e in ends])
            if not bool((hit[0] ^ hit[1]).all()):
                raise ConfigError(f"the extra action of {name!r} on {act.key!r} axis {act.axis} does not land on "
                                  "one endpoint of each of its edges")
            power[:, edges] += act.power * hit.long()
    reversed_ = (power[0] > 0) | (power[1] < 0)  # a weight read from its output side (graph built without roles)
    head = torch.where(reversed_, ends[0], ends[1])
    tail = torch.where(reversed_, ends[1], ends[0])
    p_head, p_tail = torch.where(reversed_, power[0], power[1]), torch.where(reversed_, power[1], power[0])
    charged, carrying = group >= 0, structure.edge_width > 0
    ok = (p_head == charged[head].long() * carrying) & (p_tail == -charged[tail].long() * carrying)
    if not bool(ok.all()):
        bad = int((~ok).nonzero()[0])
        owner = next(e.key for e in structure.entries if e.edge_start <= bad < e.edge_start + e.edge_count)
        raise ConfigError(f"entry {owner!r} touches a unit with an extra symmetry without moving as q_out / q_in "
                          "(e.g. BatchNorm running statistics); sign/scale-equivariant message passing needs every "
                          "value at a charged unit to move with it")
    kind = torch.tensor([KINDS.index(spec.groups[n].extra[0]) for n in extra] + [-1], dtype=torch.long)[group]
    sign, scale = kind == 0, kind == 1
    return Charges(sign, scale, torch.stack([tail, head]), sign[tail] | sign[head], scale[tail] | scale[head])


def batch_charges(g: GraphInputs) -> Charges:
    """The `Charges` of a graph batch (each structure's derived once, cached while the structure lives)."""
    per = []
    for s in dict.fromkeys(g.structures):
        if s not in _CACHE:
            _CACHE[s] = charges_of(s)
        per.append(_CACHE[s])
    table = dict(zip(dict.fromkeys(g.structures), per))
    parts = [table[s] for s in g.structures]
    device = g.edge_val.device
    shift = g.node_ptr[:-1].repeat_interleave(torch.tensor([s.num_edges for s in g.structures], device=device))
    oriented = torch.cat([p.oriented for p in parts], dim=1).to(device) + shift
    sign, scale, edge_sign, edge_scale = (torch.cat([getattr(p, f) for p in parts]).to(device)
                                          for f in ("sign", "scale", "edge_sign", "edge_scale"))
    return Charges(sign, scale, oriented, edge_sign, edge_scale)
