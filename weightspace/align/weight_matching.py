"""Weight matching (Ainsworth, Hayase & Srinivasa, *Git Re-Basin*, ICLR 2023, Alg. 1) on any spec.

Finds the group element g maximizing the alignment objective

    J(g) = sum over entries k of <A_k, (g · B)_k>

by coordinate descent: one group at a time, with every other group held at its
current permutation, J is linear in that group's permutation matrix, so the best
one is a linear assignment over the similarity matrix

    C[i, j] = sum over members (k, factor) of the group of <A_k[.., i, ..], B'_k[.., j, ..]>

where B' is B with the current permutations applied on every other factor. Every
tensor touching the group takes part (biases, norm parameters, residual streams,
factored head axes), which is what lets it recover a planted permutation exactly
on residual networks. Factored axes (heads × head_dim) are also matched
hierarchically: a head of A is paired with a head of B by the value of the best
within-head assignment, then the within-head group is solved given the heads.

Works on tensors directly: B' is kept permuted in place of a copy per step, and a
group update only re-indexes the tensors it touches.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch

from ..spec import GroupElement, WeightSpec
from .lap import assignment_value, best_permutation
from .pair import check_pair, float_keys


@dataclass(frozen=True)
class Matching:
    """Result of weight matching.

    element: g with `spec.apply(sd_b, g)` ≈ A; objective: J(g); sweeps: coordinate
    sweeps of the best run; objectives: the final J of every run (first from `init`
    or the identity, then the random restarts).
    """

    element: GroupElement
    objective: float
    sweeps: int
    objectives: tuple[float, ...] = ()


@dataclass
class _Slot:
    """One place a group acts: entry `key`, dimension `dim` of its factored view."""

    key: str
    dim: int


@dataclass
class _Problem:
    """The factored tensors of A, the running permuted B', and where each group acts."""

    a: dict[str, torch.Tensor]
    b: dict[str, torch.Tensor]
    slots: dict[str, list[_Slot]]
    sizes: dict[str, int]
    pairs: dict[str, dict[str, list[tuple[str, int, int]]]] = field(default_factory=dict)


def _factored_dims(spec: WeightSpec, key: str) -> list[str | None]:
    return [f.group for axis in spec.entries[key].axes for f in axis]


def _problem(spec: WeightSpec, sd_a, sd_b, keys: list[str], dtype: torch.dtype) -> _Problem:
    a, b, slots = {}, {}, {name: [] for name in spec.groups}
    pairs: dict[str, dict[str, list[tuple[str, int, int]]]] = {}
    for key in keys:
        entry = spec.entries[key]
        shape = entry.factored_shape
        a[key] = sd_a[key].detach().to(dtype).reshape(shape)
        b[key] = sd_b[key].detach().to(dtype).reshape(shape)
        dims = _factored_dims(spec, key)
        for d, name in enumerate(dims):
            if name is not None:
                slots[name].append(_Slot(key, d))
        start = 0
        for axis in entry.axes:
            for j in range(len(axis) - 1):
                outer, inner = axis[j].group, axis[j + 1].group
                if outer is not None and inner is not None and inner != outer:
                    pairs.setdefault(outer, {}).setdefault(inner, []).append((key, start + j, start + j + 1))
            start += len(axis)
    sizes = {name: g.size for name, g in spec.groups.items()}
    return _Problem(a, b, slots, sizes, pairs)


def _contract(ta: torch.Tensor, tb: torch.Tensor, dim: int) -> torch.Tensor:
    """M[i, k] = <ta at index i of `dim`, tb at index k of `dim`> (BLAS on strided views where possible)."""
    if ta.dim() == 1:
        return torch.outer(ta, tb)
    if ta.dim() == 2:
        return ta @ tb.T if dim == 0 else ta.T @ tb
    rest = list(range(1, ta.dim()))
    return torch.tensordot(ta.movedim(dim, 0), tb.movedim(dim, 0), dims=(rest, rest))


def _neighbors(p: _Problem) -> dict[str, set[str]]:
    """Groups whose permutation the similarity of each group depends on."""
    at_key: dict[str, list[str]] = {}
    for name, slots in p.slots.items():
        for s in slots:
            at_key.setdefault(s.key, []).append(name)
    out = {}
    for name, slots in p.slots.items():
        near = set()
        for s in slots:
            names = at_key[s.key]
            near |= {n for n in names if n != name or names.count(name) > 1}
        out[name] = near
    for outer, inners in p.pairs.items():
        for inner in inners:
            out[outer] |= out[inner] | {inner}
    return out


def _similarity(p: _Problem, name: str, perms: dict[str, torch.Tensor], skip: set[tuple[str, int]] = frozenset()):
    """C[i, j] = <A at i, B with the group's current permutation undone at j>, summed over slots."""
    n = p.sizes[name]
    m = torch.zeros(n, n, dtype=next(iter(p.a.values())).dtype)
    for s in p.slots[name]:
        if (s.key, s.dim) not in skip:
            m += _contract(p.a[s.key], p.b[s.key], s.dim)
    return m[:, torch.argsort(perms[name])].to(torch.float64)


def _set(p: _Problem, name: str, perms: dict[str, torch.Tensor], new: torch.Tensor) -> None:
    """Move the group from its current permutation to `new`, re-indexing only its tensors."""
    delta = torch.argsort(perms[name])[new]
    for s in p.slots[name]:
        p.b[s.key] = torch.index_select(p.b[s.key], s.dim, delta)
    perms[name] = new


def _objective(p: _Problem) -> float:
    return float(sum(torch.dot(p.a[k].reshape(-1).double(), p.b[k].reshape(-1).double()) for k in p.a))


def _hierarchical(p: _Problem, outer: str, perms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Heads first by their best within-head assignment, then each within-head group given the heads."""
    n = p.sizes[outer]
    paired = {(key, dg) for inner in p.pairs[outer].values() for key, dg, _ in inner}
    score = _similarity(p, outer, perms, skip=paired)
    joint: dict[str, torch.Tensor] = {}
    for inner, where in p.pairs[outer].items():
        m = p.sizes[inner]
        s = torch.zeros(n, m, n, m, dtype=torch.float64)
        inv_o, inv_i = torch.argsort(perms[outer]), torch.argsort(perms[inner])
        for key, dg, di in where:
            ta = p.a[key].movedim((dg, di), (0, 1))
            tb = p.b[key].movedim((dg, di), (0, 1))
            t = torch.tensordot(ta, tb, dims=(list(range(2, ta.dim())),) * 2).to(torch.float64)
            s += t[:, :, inv_o][:, :, :, inv_i]
        s = s.permute(0, 2, 1, 3)
        inner_only = _similarity(p, inner, perms, skip={(key, di) for key, _, di in where})
        score += torch.tensor([[assignment_value(s[i, j] + inner_only / n) for j in range(n)] for i in range(n)])
        joint[inner] = (s, inner_only)
    heads = best_permutation(score)
    new = {outer: heads}
    for inner, (s, inner_only) in joint.items():
        new[inner] = best_permutation(inner_only + s[torch.arange(n), heads].sum(0))
    return new


def _run(p: _Problem, perms: dict[str, torch.Tensor], max_sweeps: int, hierarchical: bool, gen: torch.Generator):
    order = [n for n in p.slots if p.slots[n]]
    for name, perm in list(perms.items()):
        perms[name] = torch.arange(p.sizes[name])
        if p.slots[name]:
            _set(p, name, perms, perm)
    best = _objective(p)
    best_perms = dict(perms)
    near = _neighbors(p)
    version = {name: 0 for name in perms}
    solved_at: dict[str, tuple[int, ...]] = {}
    sweeps = 0
    for sweeps in range(1, max_sweeps + 1):
        before_sweep = dict(version)
        for idx in torch.randperm(len(order), generator=gen).tolist():
            name = order[idx]
            seen = tuple(version[n] for n in sorted(near[name]))
            if solved_at.get(name) == seen:
                continue  # nothing this group's similarity depends on has moved: same answer
            _update(p, name, perms, hierarchical, version)
            solved_at[name] = tuple(version[n] for n in sorted(near[name]))
        if version == before_sweep:
            break
        value = _objective(p)
        if value <= best + 1e-12 * max(abs(best), 1.0):
            break
        best, best_perms = value, dict(perms)
    return best, best_perms, sweeps


def _update(p: _Problem, name: str, perms: dict[str, torch.Tensor], hierarchical: bool, version: dict[str, int]):
    """One coordinate step on `name` (plus the hierarchical candidate where it has inner factors)."""
    start = {k: perms[k] for k in (name, *p.pairs.get(name, ()))}
    _set(p, name, perms, best_permutation(_similarity(p, name, perms)))
    if hierarchical and name in p.pairs:
        before = _objective(p)
        saved = {k: perms[k] for k in start}
        for k, v in _hierarchical(p, name, perms).items():
            _set(p, k, perms, v)
        if _objective(p) <= before:
            for k, v in saved.items():
                _set(p, k, perms, v)
    for k, old in start.items():
        if not torch.equal(perms[k], old):
            version[k] += 1


def match_weights(
    spec: WeightSpec,
    sd_a: Mapping[str, torch.Tensor],
    sd_b: Mapping[str, torch.Tensor],
    *,
    max_sweeps: int = 100,
    restarts: int = 0,
    hierarchical: bool = True,
    init: GroupElement | None = None,
    include_buffers: bool = False,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Matching:
    """Weight matching of B onto A; see the module docstring.

    Args:
        spec: the weight space's symmetry (from `ws.parse`, `ws.infer_spec` or by hand).
        sd_a, sd_b: state dicts of one architecture (aliases allowed, never modified).
        max_sweeps: cap on coordinate-descent sweeps; a sweep that brings no gain stops.
        restarts: extra runs from uniformly random permutations; the best objective wins.
        hierarchical: also try the heads-then-head_dim update on factored axes.
        init: starting element (default identity).
        include_buffers: also match floating buffers (BatchNorm running statistics).
        generator: randomness of group order and restarts (default seed 0).
        dtype: dtype of the contractions (the objective is summed in float64).
    """
    check_pair(sd_a, sd_b, spec)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    keys = float_keys(spec, sd_a, include_buffers)
    starts = [{n: (init.perms[n] if init is not None and n in init.perms else torch.arange(s)) for n, s in
               ((n, g.size) for n, g in spec.groups.items())}]
    starts += [{n: torch.randperm(g.size, generator=gen) for n, g in spec.groups.items()} for _ in range(restarts)]
    results = []
    for start in starts:
        p = _problem(spec, sd_a, sd_b, keys, dtype)
        results.append(_run(p, {n: v.long().clone() for n, v in start.items()}, max_sweeps, hierarchical, gen))
    best = max(range(len(results)), key=lambda i: results[i][0])
    value, perms, sweeps = results[best]
    return Matching(GroupElement(perms), value, sweeps, tuple(r[0] for r in results))


def weight_matching(spec: WeightSpec, sd_a, sd_b, **kwargs) -> GroupElement:
    """The element g such that `spec.apply(sd_b, g)` is B aligned to A (see `match_weights`)."""
    return match_weights(spec, sd_a, sd_b, **kwargs).element


def alignment_objective(spec: WeightSpec, sd_a, sd_b, g: GroupElement | None = None, include_buffers: bool = False) -> float:
    """J(g) = sum of <A_k, (g · B)_k> over the floating entries weight matching uses."""
    check_pair(sd_a, sd_b, spec)
    keys = float_keys(spec, sd_a, include_buffers)
    moved = spec.apply({k: sd_b[k] for k in keys}, g, strict=False) if g is not None else sd_b
    return float(sum(torch.dot(sd_a[k].reshape(-1).double(), moved[k].reshape(-1).double()) for k in keys))
