"""Activation matching (Ainsworth et al. 2023, Sec. 3.1; Li et al. 2015) on any parsed model.

Each group's units are paired by the Pearson correlation of their activations on
data, summed over every graph node the group permutes (pre-activations,
post-activations, normalized values, residual sums, attention heads), then one
linear assignment per group. Unlike weight matching, the groups are independent:
B's activations come from B's own forward pass. For factored axes (heads ×
head_dim) the correlation is taken over (head, within-head) unit pairs and solved
hierarchically: heads by their best within-head assignment, then the within-head
group given the heads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn

from ..parser import ParsedModel, parse_model
from ..parser.sites import Site
from ..spec import GroupElement, WeightSpec
from .activations import GroupActivations
from .data import input_batches
from ..errors import AlignError
from .lap import assignment_value, best_permutation
from .moments import Moments
from .pair import check_pair


@dataclass
class _Plan:
    """Which (site, dims) feed which group, standalone or as an (outer, inner) pair."""

    single: dict[str, list[tuple[Site, int]]] = field(default_factory=dict)
    joint: dict[tuple[str, str], list[tuple[Site, int, int]]] = field(default_factory=dict)


def factor_pairs(spec: WeightSpec) -> set[tuple[str, str]]:
    """(outer, inner) groups that are adjacent factors of one axis somewhere in the spec."""
    pairs = set()
    for e in spec.entries.values():
        for axis in e.axes:
            for f, h in zip(axis[:-1], axis[1:]):
                if f.group is not None and h.group is not None and f.group != h.group:
                    pairs.add((f.group, h.group))
    return pairs


def _plan(spec: WeightSpec, sites: Iterable[Site]) -> _Plan:
    pairs = factor_pairs(spec)
    plan = _Plan({n: [] for n in spec.groups}, {p: [] for p in pairs})
    for site in sites:
        used = set()
        for outer, inner in sorted(pairs):
            do, di = site.dims_of(outer), site.dims_of(inner)
            if len(do) == 1 and len(di) == 1 and not {outer, inner} & used:
                plan.joint[(outer, inner)].append((site, do[0], di[0]))
                used |= {outer, inner}
        for name in spec.groups:
            dims = site.dims_of(name)
            if name not in used and len(dims) == 1:
                plan.single[name].append((site, dims[0]))
    return plan


def _units(value: torch.Tensor, site: Site, dims: tuple[int, ...]) -> torch.Tensor:
    """(samples, units) view of a node value: `dims` become the unit axis, the rest samples."""
    t = value.reshape(tuple(f.size for f in site.factors)).movedim(dims, tuple(range(-len(dims), 0)))
    return t.reshape(-1, int(torch.tensor([site.factors[d].size for d in dims]).prod()))


def _solve(spec: WeightSpec, corr_single: dict[str, torch.Tensor], corr_joint: dict) -> dict[str, torch.Tensor]:
    perms: dict[str, torch.Tensor] = {}
    outers: dict[str, list[str]] = {}
    for outer, inner in corr_joint:
        outers.setdefault(outer, []).append(inner)
    for outer, inners in outers.items():
        n = spec.groups[outer].size
        score = corr_single[outer].clone()
        blocks = {}
        for inner in inners:
            m = spec.groups[inner].size
            s = corr_joint[(outer, inner)].reshape(n, m, n, m).permute(0, 2, 1, 3)
            alone = corr_single[inner]
            score += torch.tensor([[assignment_value(s[i, j] + alone / n) for j in range(n)] for i in range(n)])
            blocks[inner] = s
        perms[outer] = best_permutation(score)
        for inner, s in blocks.items():
            total = corr_single[inner] + s[torch.arange(n), perms[outer]].sum(0)
            perms[inner] = best_permutation(total)
    for name in spec.groups:
        if name not in perms:
            perms[name] = best_permutation(corr_single[name])
    return perms


def unit_moments(
    model: nn.Module,
    parsed: ParsedModel,
    state_dicts: Sequence[Mapping[str, torch.Tensor]],
    inputs: Sequence[tuple],
    pairs: tuple[tuple[int, int], ...] | None = None,
) -> tuple[dict[str, list[Moments]], dict[tuple[str, str], list[Moments]]]:
    """Per group, one `Moments` per activation site of the models' units (and per (outer, inner) factored pair).

    Every state dict runs the parsed graph on every input batch (`GroupActivations`);
    `pairs` says which model pairs' cross products are kept (all by default).
    AlignError when a group acts on no activation.
    """
    acts = GroupActivations(model, parsed)
    if acts.unreached:
        raise AlignError(f"groups {list(acts.unreached)[:6]} act on no activation of the traced forward")
    plan = _plan(parsed.spec, acts.sites)
    k = len(state_dicts)
    single = {n: [Moments(k, pairs) for _ in where] for n, where in plan.single.items()}
    joint = {p: [Moments(k, pairs) for _ in where] for p, where in plan.joint.items()}
    for args in inputs:
        values = [acts(sd, args) for sd in state_dicts]
        for name, where in plan.single.items():
            for mom, (site, d) in zip(single[name], where):
                mom.add([_units(v[site.node], site, (d,)) for v in values])
        for pair, where in plan.joint.items():
            for mom, (site, do, di) in zip(joint[pair], where):
                mom.add([_units(v[site.node], site, (do, di)) for v in values])
    return single, joint


def activation_matching(
    model: nn.Module,
    sd_a: Mapping[str, torch.Tensor],
    sd_b: Mapping[str, torch.Tensor],
    batches: Iterable[Any],
    *,
    parsed: ParsedModel | None = None,
    max_batches: int | None = None,
) -> GroupElement:
    """The element g such that `parsed.spec.apply(sd_b, g)` is B aligned to A by activations.

    Args:
        model: template module of both models (never modified).
        batches: inputs or (inputs, targets) batches, all of one shape; eval mode.
        parsed: `ws.parse_model(model, ...)` on a batch of that shape, whose trace gives
            the activation sites; by default the model is parsed (once) on the first batch.
        max_batches: use at most this many batches.
    """
    inputs = list(input_batches(batches, max_batches))
    if not inputs:
        raise AlignError("activation matching needs at least one batch of data")
    if parsed is None:
        parsed = parse_model(model, inputs[0])
    spec = parsed.spec
    check_pair(sd_a, sd_b, spec)
    single, joint = unit_moments(model, parsed, [sd_a, sd_b], inputs, pairs=((0, 1),))

    def total(moments: list[Moments], size: int) -> torch.Tensor:
        out = torch.zeros(size, size, dtype=torch.float64)
        for m in moments:
            out += m.correlation()
        return out

    corr_single = {n: total(ms, spec.groups[n].size) for n, ms in single.items()}
    corr_joint = {
        (o, i): total(ms, spec.groups[o].size * spec.groups[i].size) for (o, i), ms in joint.items() if ms
    }
    return GroupElement(_solve(spec, corr_single, corr_joint))
