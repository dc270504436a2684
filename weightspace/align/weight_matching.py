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

One matcher for one pair and for a batch of pairs (aligned mixup, zoo-wide
alignment): the similarity matrices of all pairs come from one batched contraction
per group member, the linear assignments run per pair (on torch's intra-op thread
count of threads at once), and each pair stops on its own once a sweep brings no gain. B is
never permuted per step: a group update changes only its permutation; the contractions and the
objective read B through the permutations' indices, and B' is made through the spec's own
action (`apply_entry`, what `WeightSpec.apply` runs per entry) only where a step needs it whole.

Coordinate descent alone stalls where a tiny group sits between the two sides of one
wide group, as the squeeze-excitation bottleneck of an inverted-residual block does
(expand 1×1 -> depthwise -> SE reduce to 2 units -> SE expand back -> project). Once the
2 SE units are swapped, the SE expand weight (wide × 2, the largest entries of the
block at init: fan-in 2) shows the wide group its two columns swapped, and the wide
group settles on the channels that fit them (10 of 48 channels in one case). Each step
alone then loses J (swapping the SE units back: −0.7 of 348; re-solving the channels
after that: +14), so no coordinate step leaves. Measured on planted copies: 3 of 5
seeds of tests/align/bottleneck.py keep an SE group and its channel group wrong (2 of
9 groups); on a 3-block variant 2 of 5 seeds stay wrong with 3 restarts too. Neither
the depthwise (per-channel) kernels nor BatchNorm-only tensors are the cause: their
evidence is exact but outweighed by the swapped SE columns. Hence, once a pair's sweep
brings no gain, every small bottleneck group (at most `ENUMERATED_MAX` units, sharing
two or more tensors with one other group, not part of a factored axis, which the
hierarchical step handles) is tried at each of its other permutations with its
neighbour groups re-solved for it (`_escape`); the best move that raises J is kept and
descent resumes. The objective is the same; J never ends below what plain descent
reaches before the first stall.

Descent starts from a settled pass (`_settled_pass`, the default when no `init` is
given): each group once, in spec order, from only the tensors whose other groups are
already solved, so the first solves are not steered by the identity of groups nobody has
matched yet. On the issue-20 MLPs it ends at a higher J than descent from the identity
(1 epoch: 70.0 vs 64.1, 9 solves instead of 28; 3 epochs: 132.2 vs 131.2, 24 instead of 36);
where its J is below the identity's, the pair starts from the identity instead.

Work per solve: a group is solved again only once a group its similarity depends on has
moved; large slots keep their contraction between solves and update it on the columns
another group moved, found from the permutations (`_SlotCache`); each entry's term of J is
kept until the entry moves, and computed on the CPU without a permuted copy
(`lap.gathered_dot`: float64 sums of the exact products of float32 entries; elsewhere from
B'). The tensors and contractions stay on the state dicts' device (CUDA included), the
permutations, solves and bookkeeping on the CPU. Each solve is
warm-started from the group's current permutation and the duals of its last solve (`lap`):
late in descent, when a neighbour moved a few units, only the rows that lost their match
are augmented (issue-20 MLP trained 3 epochs: 24 solves in 0.23 s against 0.46 s for
scipy's `linear_sum_assignment` on the same matrices).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import itertools
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..spec import GroupElement, WeightSpec
from ..spec.action import apply_entry
from ..errors import AlignError
from . import lap
from .lap import assignment_value, best_permutation, warm_permutation
from .pair import check_pair, float_keys

Perms = dict[str, torch.Tensor]  # per group: permutations (B, n), or move counts (B,)
CACHED_MIN = 1 << 15  # elements per pair from which a slot's contraction is cached (`_SlotCache`)
ENUMERATED_MAX = 4  # groups of at most this many units are tried at every permutation once descent stalls (`_escape`)


@dataclass(frozen=True)
class Matching:
    """Result of weight matching.

    element: g with `spec.apply(sd_b, g)` ≈ A; objective: J(g); sweeps: coordinate
    sweeps of the best run; objectives: the final J of every run (first from `init`
    or the identity, then the random restarts). For a batch of pairs
    (`batch_dims=1`) the element is batched (perms of shape (B, n)), objective and
    each of objectives are float64 tensors of shape (B,), and sweeps is the most
    any pair's best run took.
    """

    element: GroupElement
    objective: float | torch.Tensor
    sweeps: int
    objectives: tuple[float | torch.Tensor, ...] = ()


@dataclass
class _Problem:
    """A's factored tensors, B as given (entry shape), where each group acts, the current permutations.

    Every tensor has a leading pair dim; slot and pair dims count it. B is never permuted in
    place: the slot caches and the objective read it through the permutations' indices, and
    B' (B at the current permutations) is made only where a step needs the whole tensor
    (`factored`), once per change of the permutations it depends on.
    """

    spec: WeightSpec
    batch: int
    a: dict[str, torch.Tensor]
    b: dict[str, torch.Tensor]
    slots: dict[str, list[tuple[str, int]]]
    sizes: dict[str, int]
    pairs: dict[str, dict[str, list[tuple[str, int, int]]]] = field(default_factory=dict)
    perms: Perms = field(default_factory=dict)  # the running permutations (`_run`); `_set` replaces, never writes into
    cache: dict[tuple[str, int], "_SlotCache"] = field(default_factory=dict)
    dots: dict[str, tuple[tuple[torch.Tensor, ...], torch.Tensor]] = field(default_factory=dict)  # `_key_objective`
    shown: dict[str, tuple[tuple[torch.Tensor, ...], torch.Tensor]] = field(default_factory=dict)  # `factored`
    fixed: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)  # small slots' fixed terms (`_similarity`)
    duals: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)  # per (group, pair): its last solve's (`lap`)
    groups_at: dict[str, list[tuple[int, str]]] = field(init=False)  # per tensor: (dim, group) of its group factors
    plans: dict[str, "_Plan"] = field(init=False)  # per tensor: how `_layout` indexes it
    native: bool = field(init=False)  # the objective by `lap.gathered_dot` (CPU, float32/64, the library built)

    def __post_init__(self):
        self.groups_at = {k: [] for k in self.a}
        for name, slots in self.slots.items():
            for key, dim in slots:
                self.groups_at[key].append((dim, name))
        self.plans = {k: _plan(t.shape[1:], {dim - 1: g for dim, g in self.groups_at[k]}) for k, t in self.a.items()}
        first = next(iter(self.a.values()), None)
        self.native = (lap.native_available() and first is not None and first.device.type == "cpu"
                       and first.dtype in (torch.float32, torch.float64))

    def alone(self, key: str, dim: int) -> bool:
        """Whether (key, dim) is the only group factor of the tensor `key` (its term of C is then fixed)."""
        return len(self.groups_at[key]) == 1

    def at(self, key: str) -> tuple[torch.Tensor, ...]:
        """The current permutations of the groups acting on `key` (the tensors themselves: compared by identity)."""
        return tuple(self.perms[g] for _, g in self.groups_at[key])

    def factored(self, key: str) -> torch.Tensor:
        """B' of `key` (B at the current permutations) in its factored view, made on first use after a change."""
        at = self.at(key)
        hit = self.shown.get(key)
        if hit is None or len(hit[0]) != len(at) or any(x is not y for x, y in zip(hit[0], at)):
            moves = {g: self.perms[g][0] if self.batch == 1 else self.perms[g] for _, g in self.groups_at[key]}
            entry = self.spec.entries[key]
            moved = apply_entry(entry, self.b[key], GroupElement(moves), self.spec.groups, batch_dims=1)
            hit = self.shown[key] = (at, moved)
        t = hit[1]
        return t if t.shape == self.a[key].shape else t.reshape(self.a[key].shape)


def _problem(spec: WeightSpec, sd_a, sd_b, keys: list[str], n: int, dtype: torch.dtype) -> _Problem:
    a, b, slots = {}, {}, {name: [] for name in spec.groups}
    pairs: dict[str, dict[str, list[tuple[str, int, int]]]] = {}
    for key in keys:
        entry = spec.entries[key]
        a[key] = sd_a[key].detach().to(dtype).reshape(n, *entry.factored_shape).contiguous()
        b[key] = sd_b[key].detach().to(dtype).contiguous()
        dim = 1
        for axis in entry.axes:
            for j, f in enumerate(axis):
                if f.group is not None:
                    slots[f.group].append((key, dim + j))
                if j + 1 < len(axis):
                    outer, inner = f.group, axis[j + 1].group
                    if outer is not None and inner is not None and inner != outer:
                        pairs.setdefault(outer, {}).setdefault(inner, []).append((key, dim + j, dim + j + 1))
            dim += len(axis)
    sizes = {name: g.size for name, g in spec.groups.items()}
    return _Problem(spec, n, a, b, slots, sizes, pairs)


@dataclass
class _SlotCache:
    """One slot's contraction M[p, i, j] = <A at i, B'' at j> and the permutations it was computed at.

    B'' is B' with the slot's own group undone along its dim, laid out (pairs, n, rest): its
    column c (a `rest` position) is B's column at the other groups' permutations of c's
    indices (`_sources`), so it changes only where one of those permutations changed at c,
    and M follows with a product over those columns alone, read from B by index at the old
    and the new permutations. A and B are kept laid out (pairs, rest, n), so that those
    columns are contiguous rows (the products' values do not depend on the operands' layout).
    """

    a: torch.Tensor  # A, (pairs, rest, n)
    b: torch.Tensor  # B as given, (pairs, rest, n)
    others: list[tuple[int, str]]  # (rest position, group) of every other group factor of the tensor
    rest: list[int]  # the rest dims' sizes
    then: dict[str, torch.Tensor] = field(default_factory=dict)
    m: torch.Tensor | None = None


def _product(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x @ yᵀ per pair, (pairs, n, n) (one pair: a plain matrix product; a batch-1 bmm is slower on CPU)."""
    if x.shape[0] == 1:
        return (x[0] @ y[0].T).unsqueeze(0)
    return x @ y.transpose(1, 2)


def _take_rows(y: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
    """`y` (pairs, ...) indexed along `dim` by each pair's `index` (pairs, n); one pair: index_select."""
    if index.shape[0] == 1:
        return y.index_select(dim, index[0])
    shape = list(y.shape)
    shape[dim] = index.shape[1]
    view = [index.shape[0]] + [1] * (y.dim() - 1)
    view[dim] = index.shape[1]
    return y.gather(dim, index.view(view).expand(shape))


def _columns_first(t: torch.Tensor, dim: int, copy: bool) -> torch.Tensor:
    """(pairs, rest, n): `t` with `dim` last and the other entry dims flattened first; contiguous if `copy`."""
    out = t.movedim(dim, -1).reshape(t.shape[0], -1, t.shape[dim])
    return out.contiguous() if copy else out


def _new_cache(p: _Problem, key: str, dim: int) -> _SlotCache:
    """A slot's cache; where no other group acts on the tensor, M is computed once, from views (no copies)."""
    shape = p.a[key].shape
    rest = [s for i, s in enumerate(shape) if i not in (0, dim)]
    others = [(d - 1 if d < dim else d - 2, g) for g, slots in p.slots.items() for k, d in slots if k == key and d != dim]
    b = p.b[key].reshape(shape)
    return _SlotCache(_columns_first(p.a[key], dim, bool(others)), _columns_first(b, dim, bool(others)), others, rest)


def _moved_columns(cache: _SlotCache, perms: Perms) -> torch.Tensor:
    """The rest positions where some other group's permutation changed since the cache was filled (any pair)."""
    mask = torch.zeros(cache.rest, dtype=torch.bool)
    for pos, g in cache.others:
        changed = (perms[g] != cache.then[g]).any(0)
        if bool(changed.any()):
            view = [1] * len(cache.rest)
            view[pos] = -1
            mask |= changed.view(view)
    return mask.reshape(-1).nonzero().squeeze(1)


def _sources(cache: _SlotCache, perms: Perms, batch: int) -> torch.Tensor:
    """(pairs, rest) flat rest index in B of each column of B'' at `perms` (see `_SlotCache`)."""
    src = torch.zeros(batch, *cache.rest, dtype=torch.long)
    stride = 1
    strides = []
    for size in reversed(cache.rest):
        strides.append(stride)
        stride *= size
    strides.reverse()
    grouped = dict(cache.others)
    for pos, size in enumerate(cache.rest):
        index = perms[grouped[pos]] if pos in grouped else torch.arange(size).expand(batch, -1)
        view = [batch] + [1] * len(cache.rest)
        view[pos + 1] = size
        src = src + (index * strides[pos]).view(view)
    return src.reshape(batch, -1)


def _columns(cache: _SlotCache, src: torch.Tensor) -> torch.Tensor:
    """B'' columns `src` ((pairs, k) rest indices in B) as (pairs, k, n), contiguous."""
    src = src.to(cache.b.device)
    if src.shape[0] == 1:
        return cache.b.index_select(1, src[0])
    return cache.b.gather(1, src.unsqueeze(2).expand(-1, -1, cache.b.shape[2]))


def _slot_similarity(p: _Problem, key: str, dim: int, perms: Perms) -> torch.Tensor:
    """M (pairs, n, n) of one slot for every pair, updated from its cache where few columns moved."""
    cache = p.cache.get((key, dim))
    if cache is None:
        cache = p.cache[(key, dim)] = _new_cache(p, key, dim)
    if cache.m is not None:
        moved = _moved_columns(cache, perms)
        if len(moved) == 0:
            return cache.m
        if 2 * len(moved) <= cache.a.shape[1]:
            now = _columns(cache, _sources(cache, perms, p.batch)[:, moved])
            then = _columns(cache, _sources(cache, cache.then, p.batch)[:, moved])
            a = cache.a.index_select(1, moved.to(cache.a.device))
            cache.m = cache.m + _product(a.transpose(1, 2), (now - then).transpose(1, 2))
            cache.then = {g: perms[g] for _, g in cache.others}
            return cache.m
    b = _columns(cache, _sources(cache, perms, p.batch)) if cache.others else cache.b
    cache.m = _product(cache.a.transpose(1, 2), b.transpose(1, 2))
    cache.then = {g: perms[g] for _, g in cache.others}
    return cache.m


def _contract_pair(ta: torch.Tensor, tb: torch.Tensor, dim: int) -> torch.Tensor:
    """M[i, k] = <ta at index i of `dim`, tb at index k of `dim`> (BLAS on strided views where possible)."""
    if ta.dim() == 1:
        return torch.outer(ta, tb)
    if ta.dim() == 2:
        return ta @ tb.T if dim == 0 else ta.T @ tb
    rest = list(range(1, ta.dim()))
    return torch.tensordot(ta.movedim(dim, 0), tb.movedim(dim, 0), dims=(rest, rest))


def _contract(ta: torch.Tensor, tb: torch.Tensor, dim: int) -> torch.Tensor:
    """`_contract_pair` of every pair along the leading dim: (B, n, n), one batched product."""
    if ta.shape[0] == 1:  # one pair: plain matrix products (a batch-1 bmm is slower on CPU)
        return _contract_pair(ta[0], tb[0], dim - 1).unsqueeze(0)
    if ta.dim() == 2:
        return ta.unsqueeze(2) * tb.unsqueeze(1)
    n = ta.shape[dim]
    x = ta.movedim(dim, 1).reshape(ta.shape[0], n, -1)
    y = tb.movedim(dim, 1).reshape(tb.shape[0], n, -1)
    return x @ y.transpose(1, 2)


def _neighbors(p: _Problem) -> dict[str, set[str]]:
    """Groups whose permutation the similarity of each group depends on."""
    at_key: dict[str, list[str]] = {}
    for name, slots in p.slots.items():
        for key, _ in slots:
            at_key.setdefault(key, []).append(name)
    out = {}
    for name, slots in p.slots.items():
        near = set()
        for key, _ in slots:
            names = at_key[key]
            near |= {n for n in names if n != name or names.count(name) > 1}
        out[name] = near
    for outer, inners in p.pairs.items():
        for inner in inners:
            out[outer] |= out[inner] | {inner}
    return out


def _rows(t: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    return t if rows is None else t[rows]


def _similarity(p: _Problem, name: str, perms: Perms, rows=None, skip: frozenset = frozenset()) -> torch.Tensor:
    """C[p, i, j] = <A at i, B with the group's current permutation undone at j>, summed over slots.

    Computed for every pair (the slot caches hold all pairs), then the pairs `rows` taken, on
    the CPU in the contractions' dtype. Tensors under
    `CACHED_MIN` elements are contracted afresh (cheaper than a cache's bookkeeping), except
    where the slot's group is the tensor's only group: that term never changes and is kept.
    """
    n = p.sizes[name]
    m, owned = None, False  # owned: m is this call's own sum (added into in place), not a cached term
    for key, dim in p.slots[name]:
        if (key, dim) in skip:
            continue
        if p.a[key][0].numel() >= CACHED_MIN:
            term = _slot_similarity(p, key, dim, perms)  # the cache's own tensor: never written into
        elif (key, dim) in p.fixed:
            term = p.fixed[(key, dim)]
        else:  # B undone before the contraction: a gather of the small tensor, not of the (n, n) result
            undo = torch.argsort(perms[name], dim=-1).to(p.a[key].device)
            term = _contract(p.a[key], _take_rows(p.factored(key), undo, dim), dim)
            if p.alone(key, dim):
                p.fixed[(key, dim)] = term
        if m is None:
            m = term
        elif owned:
            m += term
        else:
            m, owned = m + term, True
    if m is None:
        m = torch.zeros(p.batch, n, n)
    return _rows(m.cpu(), rows)


def _set(p: _Problem, new: Perms, perms: Perms, rows: torch.Tensor | None = None) -> None:
    """Move each group of `new` (rows `rows`, default all) to its new permutation.

    Only the permutations change (new tensors, never written into): B is read through them.
    """
    for name, v in new.items():
        perms[name] = v if rows is None else perms[name].clone().index_copy_(0, rows, v)


_Axis = tuple[int, int, "str | None"]  # (size, stride, group acting on it or None)


@dataclass(frozen=True)
class _Plan:
    """A tensor split for `lap.gathered_dot`: the dims before the last one a group acts on (rows), that
    dim (columns), and the contiguous tail after it. `last` None: no group acts, one contiguous run."""

    lead: tuple[_Axis, ...]
    last: _Axis | None
    numel: int


def _plan(shape: torch.Size, grouped: dict[int, str]) -> _Plan:
    strides = [math.prod(shape[d + 1:]) for d in range(len(shape))]
    axes = [(int(size), strides[d], grouped.get(d)) for d, size in enumerate(shape)]
    if not grouped:
        return _Plan((), None, math.prod(shape))
    last = max(grouped)
    return _Plan(tuple(axes[:last]), axes[last], math.prod(shape))


_ZERO = np.zeros(1, dtype=np.int64)


def _layout(p: _Problem, key: str, pair: int) -> tuple[np.ndarray, np.ndarray, int]:
    """`lap.gathered_dot`'s offsets of B' of `key` for one pair (see `_Plan`): (row offsets, column offsets, tail).

    numpy: these are small index arrays, where torch's per-call cost would dominate.
    """
    plan = p.plans[key]
    if plan.last is None:
        return _ZERO, _ZERO, plan.numel

    def index(axis: _Axis) -> np.ndarray:
        size, stride, group = axis
        at = p.perms[group][pair].numpy() if group is not None else np.arange(size, dtype=np.int64)
        return at if stride == 1 else at * stride

    off = _ZERO
    if plan.lead:
        off = np.zeros([size for size, _, _ in plan.lead], dtype=np.int64)
        for d, axis in enumerate(plan.lead):
            view = [1] * len(plan.lead)
            view[d] = axis[0]
            off = off + index(axis).reshape(view)
        off = np.ascontiguousarray(off.reshape(-1))
    return off, np.ascontiguousarray(index(plan.last)), plan.last[1]


def _key_dots(p: _Problem, key: str, pairs: list[int]) -> torch.Tensor:
    """<A_key, B'_key> of the pairs `pairs` (float64, CPU): by index from B with the native kernel, else from B'."""
    a, b = p.a[key], p.b[key]
    if p.native:
        out = []
        for i in pairs:
            off, col, tail = _layout(p, key, i)
            out.append(lap.gathered_dot(a[i], b[i], off, col, tail))
        return torch.tensor(out, dtype=torch.float64)
    rows = torch.tensor(pairs)
    flat = p.factored(key).reshape(p.batch, -1)[rows.to(a.device)].double()
    return (a.reshape(p.batch, -1)[rows.to(a.device)].double() * flat).sum(1).cpu()


def _key_objective(p: _Problem, key: str) -> torch.Tensor:
    """<A_key, B'_key> per pair, kept until a permutation acting on `key` changes (`_set` replaces them)."""
    at = p.at(key)
    hit = p.dots.get(key)
    if hit is None or any(x is not y for x, y in zip(hit[0], at)):
        hit = p.dots[key] = (at, _key_dots(p, key, list(range(p.batch))))
    return hit[1]


def _objective(p: _Problem, rows: torch.Tensor | None = None) -> torch.Tensor:
    """J per pair (or per pair of `rows`), float64; entries unchanged since the last call are not summed again."""
    if rows is not None and len(rows) < p.batch:  # a few pairs (escape moves, hierarchical steps): those alone
        picked = rows.tolist()
        out = torch.zeros(len(picked), dtype=torch.float64)
        for k in p.a:
            out += _key_dots(p, k, picked)
        return out
    out = torch.zeros(p.batch, dtype=torch.float64)
    for k in p.a:
        out += _key_objective(p, k)
    return out if rows is None else out[rows]


def _hierarchical(p: _Problem, outer: str, perms: Perms, row: int) -> Perms:
    """Pair `row`: heads first by their best within-head assignment, then each within-head group given the heads."""
    n = p.sizes[outer]
    at = torch.tensor([row])
    paired = frozenset((key, dg) for inner in p.pairs[outer].values() for key, dg, _ in inner)
    score = _similarity(p, outer, perms, at, skip=paired)[0].double()
    joint: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for inner, where in p.pairs[outer].items():
        m = p.sizes[inner]
        s = torch.zeros(n, m, n, m, dtype=torch.float64)
        inv_o, inv_i = torch.argsort(perms[outer][row]), torch.argsort(perms[inner][row])
        for key, dg, di in where:
            ta = p.a[key][row].movedim((dg - 1, di - 1), (0, 1))
            tb = p.factored(key)[row].movedim((dg - 1, di - 1), (0, 1))
            t = torch.tensordot(ta, tb, dims=(list(range(2, ta.dim())),) * 2).to("cpu", torch.float64)
            s += t[:, :, inv_o][:, :, :, inv_i]
        s = s.permute(0, 2, 1, 3)
        inner_only = _similarity(p, inner, perms, at, skip=frozenset((key, di) for key, _, di in where))[0].double()
        score = score + torch.tensor([[assignment_value(s[i, j] + inner_only / n) for j in range(n)] for i in range(n)])
        joint[inner] = (s, inner_only)
    heads = best_permutation(score)
    new = {outer: heads}
    for inner, (s, inner_only) in joint.items():
        new[inner] = best_permutation(inner_only + s[torch.arange(n), heads].sum(0))
    return new


def _solve(p: _Problem, name: str, perms: Perms, rows: torch.Tensor | None, skip: frozenset = frozenset()) -> None:
    """Move group `name` of the pairs `rows` (default all) to its best permutation given every other group.

    Slots in `skip` are left out of the similarity.
    """
    sim = _similarity(p, name, perms, rows, skip)
    picked = range(p.batch) if rows is None else rows.tolist()
    # warm: from the current permutation and the duals of this group's last solve
    jobs = [(s, perms[name][row], p.duals.get((name, row))) for s, row in zip(sim, picked)]
    threads = min(torch.get_num_threads(), len(jobs))
    if threads > 1:  # pairs are independent; the native solver runs without the GIL
        with ThreadPoolExecutor(threads) as pool:
            solved = list(pool.map(lambda job: warm_permutation(*job), jobs))
    else:
        solved = [warm_permutation(*job) for job in jobs]
    for row, (_, duals) in zip(picked, solved):
        if duals is not None:
            p.duals[(name, row)] = duals
    _set(p, {name: torch.stack([perm for perm, _ in solved])}, perms, rows)


def _update(p: _Problem, name: str, perms: Perms, hierarchical: bool, version: Perms, due: torch.Tensor) -> None:
    """One coordinate step on `name` for the pairs `due` (plus the hierarchical candidate on factored axes)."""
    rows = None if bool(due.all()) else due.nonzero().squeeze(1)
    start = {k: _rows(perms[k], rows) for k in (name, *p.pairs.get(name, ()))}
    _solve(p, name, perms, rows)
    if hierarchical and name in p.pairs:
        before = _objective(p, rows)
        saved = {k: _rows(perms[k], rows) for k in start}
        picked = range(p.batch) if rows is None else rows.tolist()
        candidates = [_hierarchical(p, name, perms, i) for i in picked]
        _set(p, {k: torch.stack([c[k] for c in candidates]) for k in saved}, perms, rows)
        worse = _objective(p, rows) <= before
        if bool(worse.any()):
            back = torch.tensor(picked)[worse]
            _set(p, {k: v[worse] for k, v in saved.items()}, perms, back)
    for k, old in start.items():
        changed = (_rows(perms[k], rows) != old).any(1).long()
        if rows is None:
            version[k] += changed
        else:
            version[k].index_add_(0, rows, changed)


def _settled_pass(p: _Problem, perms: Perms, order: list[str]) -> set[str]:
    """Each group once, in spec order, from only the tensors whose other groups it already solved.

    Where a tensor also carries a group not solved yet, that group's identity is no evidence,
    only noise: on the issue-20 benchmark's two MLPs (different inits, 1 epoch), descent from the
    identity ends at J = 62.6–64.1 over generator seeds 0–3, from this pass at 70.0–70.5 (the
    `rebasin` package: 66.5–67.6), in fewer sweeps. A group whose every tensor carries an unsolved group is solved from all.
    Returns the groups solved from all their tensors (not factored): descent need not solve
    them again until a neighbour moves.
    """
    groups_at: dict[str, set[str]] = {}
    for name in order:
        for key, _ in p.slots[name]:
            groups_at.setdefault(key, set()).add(name)
    solved: set[str] = set()
    full = set()
    for name in order:
        skip = frozenset((key, dim) for key, dim in p.slots[name] if groups_at[key] - solved - {name})
        if len(skip) == len(p.slots[name]):
            skip = frozenset()
        _solve(p, name, perms, None, skip)
        solved.add(name)
        if not skip and name not in p.pairs:
            full.add(name)
    return full


def _gain(value: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Where `value` beats `last` by more than rounding."""
    return value > last + 1e-12 * last.abs().clamp_min(1.0)


def _escape(p: _Problem, perms: Perms, small: list[str], near: dict[str, list[str]], rows: torch.Tensor) -> torch.Tensor:
    """For the stalled pairs `rows`: the first small group whose move raises J moves (see the module docstring).

    Each other permutation of the group is tried with the group's neighbours re-solved in
    turn; a pair takes its best such move if it beats the current J, else stays put.
    Returns which of `rows` moved.
    """
    moved = torch.zeros(len(rows), dtype=torch.bool)
    for name in small:
        todo = rows[~moved]
        if len(todo) == 0:
            break
        keep = [name, *near[name]]
        saved = {k: perms[k][todo] for k in keep}
        top = _objective(p, todo)
        best = dict(saved)
        up = torch.zeros(len(todo), dtype=torch.bool)
        for alt in list(itertools.permutations(range(p.sizes[name])))[1:]:
            _set(p, {name: saved[name][:, list(alt)]}, perms, todo)
            for other in near[name]:
                _solve(p, other, perms, todo)
            value = _objective(p, todo)
            better = _gain(value, top)
            if bool(better.any()):
                best = {k: torch.where(better[:, None], perms[k][todo], v) for k, v in best.items()}
                top, up = torch.where(better, value, top), up | better
            _set(p, saved, perms, todo)
        if bool(up.any()):
            _set(p, {k: v[up] for k, v in best.items()}, perms, todo[up])
            moved[(~moved).nonzero().squeeze(1)[up]] = True
    return moved


def _bottleneck(p: _Problem, name: str) -> bool:
    """Whether some other group shares two or more tensors with `name` (reads it and is read by it, as around SE units)."""
    keys = {key for key, _ in p.slots[name]}
    shared: dict[str, int] = {}
    for other, slots in p.slots.items():
        if other != name:
            shared[other] = len(keys & {key for key, _ in slots})
    return any(n >= 2 for n in shared.values())


def _run(p: _Problem, perms: Perms, max_sweeps: int, hierarchical: bool, gen: torch.Generator, settle: bool):
    """Coordinate descent from `perms` ((B, n) each), after `_settled_pass` if `settle`; per pair: best J, its perms, sweeps run.

    A pair whose settled pass ends below J at `perms` starts from `perms`.
    """
    p.perms = perms
    order = [n for n in p.slots if p.slots[n]]
    start = {n: perms[n] for n in order}
    perms.update({n: torch.arange(p.sizes[n]).expand(p.batch, -1) for n in perms})  # groups without tensors stay identity
    _set(p, start, perms)
    best = _objective(p)
    full, back = set(), torch.zeros(0, dtype=torch.long)
    if settle:
        full = _settled_pass(p, perms, order)
        value = _objective(p)
        back = (value < best).nonzero().squeeze(1)
        if len(back):
            _set(p, {n: v[back] for n, v in start.items()}, perms, back)
        best = torch.maximum(value, best)
    best_perms = dict(perms)
    slot = {name: i for i, name in enumerate(perms)}
    neighbors = _neighbors(p)
    near = {n: torch.tensor([slot[m] for m in sorted(v)], dtype=torch.long) for n, v in neighbors.items()}
    factored = set(p.pairs) | {inner for inners in p.pairs.values() for inner in inners}
    coupled = {n: sorted(neighbors[n] - {n}) for n in order}
    small = [n for n in order if 1 < p.sizes[n] <= ENUMERATED_MAX and n not in factored and _bottleneck(p, n)]
    counts = torch.zeros(len(slot), p.batch, dtype=torch.long)  # per group and pair: how often it has moved
    version = {name: counts[i] for name, i in slot.items()}  # row views, updated in place

    def seen(name: str) -> torch.Tensor:
        """The versions of the groups `name`'s similarity depends on, per pair."""
        return counts[near[name]]

    solved_at = {name: seen(name) for name in full}
    counts[:, back] += 1  # pairs back at their start: solve every group again
    active = torch.ones(p.batch, dtype=torch.bool)
    sweeps = torch.zeros(p.batch, dtype=torch.long)
    for sweep in range(1, max_sweeps + 1):
        sweeps[active] = sweep
        before_sweep = counts.clone()
        for idx in torch.randperm(len(order), generator=gen).tolist():
            name = order[idx]
            due = active if name not in solved_at else active & (solved_at[name] != seen(name)).any(0)
            if bool(due.any()):  # otherwise nothing this group's similarity depends on has moved: same answer
                _update(p, name, perms, hierarchical, version, due)
                solved_at[name] = seen(name)
            elif name not in solved_at:
                solved_at[name] = seen(name)
        moved = (counts != before_sweep).any(0)
        rows = (active & moved).nonzero().squeeze(1)
        gained = torch.zeros(p.batch, dtype=torch.bool)
        if len(rows):
            value = _objective(p, rows)
            up = _gain(value, best[rows])
            gained[rows[up]] = True
            best[rows[up]] = value[up]
        stalled = (active & ~gained).nonzero().squeeze(1)
        if small and len(stalled):
            kicked = stalled[_escape(p, perms, small, coupled, stalled)]
            if len(kicked):
                counts[:, kicked] += 1  # every group's similarity may have changed: re-solve all
                gained[kicked] = True
                best[kicked] = _objective(p, kicked)
        if bool(gained.any()):
            best_perms = {n: torch.where(gained[:, None], perms[n], v) for n, v in best_perms.items()}
        active = gained
        if not bool(active.any()):
            break
    return best, best_perms, sweeps


def _starts(spec: WeightSpec, init: GroupElement | None, n: int, restarts: int, gen: torch.Generator) -> list[Perms]:
    """The runs' starting permutations, (n, size) per group: `init` (default identity), then uniform draws."""
    first = init.restrict(spec.groups) if init is not None else GroupElement({})
    if first.batch_shape not in ((), (n,)):
        raise AlignError(f"init has batch shape {first.batch_shape}; expected () or ({n},) for {n} pair(s)")
    first = GroupElement({**{k: torch.arange(g.size) for k, g in spec.groups.items()}, **first.perms})
    starts = [{k: v.long().expand(n, -1).clone() for k, v in first.perms.items()}]
    starts += [
        {k: torch.stack([torch.randperm(g.size, generator=gen) for _ in range(n)]) for k, g in spec.groups.items()}
        for _ in range(restarts)
    ]
    return starts


def weight_matching(
    spec: WeightSpec,
    sd_a: Mapping[str, torch.Tensor],
    sd_b: Mapping[str, torch.Tensor],
    *,
    batch_dims: int = 0,
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
        batch_dims: 0 for one pair; 1 for B pairs at once, tensors shaped (B, *entry shape).
        max_sweeps: cap on coordinate-descent sweeps; a sweep that brings no gain stops (per pair).
        restarts: extra runs from uniformly random permutations; the best objective wins (per pair).
        hierarchical: also try the heads-then-head_dim update on factored axes.
        init: starting element, one for all pairs or batched (default: the identity, then one
            settled pass, see `_settled_pass`; an `init` given, even the identity, is used as is).
        include_buffers: also match floating buffers (BatchNorm running statistics).
        generator: randomness of group order and restarts (default seed 0).
        dtype: dtype of the contractions (the objective is summed in float64).
    """
    if batch_dims not in (0, 1):
        raise AlignError(f"weight matching takes batch_dims 0 (one pair) or 1 (a batch of pairs), got {batch_dims}")
    check_pair(sd_a, sd_b, spec, batch_dims)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    keys = float_keys(spec, sd_a, include_buffers)
    n = next(iter(sd_a.values())).shape[0] if batch_dims else 1
    if batch_dims == 0:
        sd_a, sd_b = ({k: sd[k].unsqueeze(0) for k in keys} for sd in (sd_a, sd_b))
    starts = _starts(spec, init, n, restarts, gen)
    with torch.no_grad():  # plain tensor arithmetic: skip autograd's per-op bookkeeping
        results = [_run(_problem(spec, sd_a, sd_b, keys, n, dtype), s, max_sweeps, hierarchical, gen, i == 0 and init is None)
                   for i, s in enumerate(starts)]
    values = torch.stack([r[0] for r in results])
    best = values.argmax(0)
    pick = lambda ts: ts[best, torch.arange(n)]  # noqa: E731
    perms = {k: pick(torch.stack([r[1][k] for r in results])) for k in spec.groups}
    element, sweeps = GroupElement(perms), pick(torch.stack([r[2] for r in results]))
    if batch_dims == 0:
        return Matching(element.index(0), float(values[best[0], 0]), int(sweeps[0]), tuple(float(v[0]) for v in values))
    return Matching(element, pick(values), int(sweeps.max()), tuple(values))


def alignment_objective(spec: WeightSpec, sd_a, sd_b, g: GroupElement | None = None, include_buffers: bool = False) -> float:
    """J(g) = sum of <A_k, (g · B)_k> over the floating entries weight matching uses."""
    check_pair(sd_a, sd_b, spec)
    keys = float_keys(spec, sd_a, include_buffers)
    moved = spec.apply({k: sd_b[k] for k in keys}, g, strict=False) if g is not None else sd_b
    return float(sum(torch.dot(sd_a[k].reshape(-1).double(), moved[k].reshape(-1).double()) for k in keys))
