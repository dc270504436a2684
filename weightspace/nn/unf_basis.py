"""The basis of permutation-equivariant linear maps between a spec's tensors (UNF).

Zhou et al., *Universal Neural Functionals* (2024), after Maron et al., *Invariant
and Equivariant Graph Networks* (2019): for a product of symmetric groups acting on
tensor indices, the linear maps from a tensor with permuted indices I to one with
permuted indices O that commute with the group are spanned by one map per partition
of the index multiset I ∪ O into blocks whose indices all belong to one group. A
block holding input and output indices copies along a shared index (taking the
diagonal when it holds several input indices, writing the diagonal when it holds
several output indices); a block of input indices only is averaged out; a block of
output indices only is broadcast. Fixed factors (kernel taps, input pixels, class
logits) are not indices of the group; a layer mixes them densely with the channels.

Spanning set vs basis: the partition maps are linearly independent only when every
group has at least as many elements as the partition has blocks of that group. When
a group is small (n < number of its indices) some of them are dependent. With
`dedupe=True` (default) the terms whose partition has more than n_g blocks of some
group g are dropped: the remaining ones are an exact basis (the "at least equal"
maps of an up-set of the partition lattice are a unit-triangular recombination of
the "exactly equal" maps, which vanish past n_g blocks).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Callable, Iterator, Sequence

from ..errors import ConfigError
from ..spec import WeightSpec
from .layout import EntryLayout


def set_partitions(items: Sequence) -> Iterator[list[list]]:
    """Every partition of `items` into non-empty blocks (restricted growth strings)."""
    n = len(items)
    if n == 0:
        yield []
        return

    def grow(i: int, labels: list[int], blocks: int) -> Iterator[list[int]]:
        if i == n:
            yield labels
            return
        for b in range(blocks + 1):
            yield from grow(i + 1, labels + [b], max(blocks, b + 1))

    for labels in grow(0, [], 0):
        out: list[list] = [[] for _ in range(max(labels) + 1)]
        for item, b in zip(items, labels):
            out[b].append(item)
        yield out


def bell(n: int) -> int:
    """The number of set partitions of n items."""
    row = [1]
    for _ in range(n):
        nxt = [row[-1]]
        for v in row:
            nxt.append(nxt[-1] + v)
        row = nxt
    return row[0]


@dataclass(frozen=True)
class Term:
    """One basis map from entry `in_key` to entry `out_key`.

    Blocks index the entries' permuted factors (0..m-1, in factored-axis order, as
    `EntryLayout.perm_pos` lists them). `links` pairs an input block with the output
    block it is copied to; unlinked input blocks are averaged, unlinked output blocks
    broadcast.
    """

    in_key: str
    out_key: str
    in_blocks: tuple[tuple[int, ...], ...]
    out_blocks: tuple[tuple[int, ...], ...]
    links: tuple[tuple[int, int], ...]

    @property
    def pooled(self) -> tuple[int, ...]:
        linked = {i for i, _ in self.links}
        return tuple(i for i in range(len(self.in_blocks)) if i not in linked)

    @property
    def broadcast(self) -> tuple[int, ...]:
        linked = {o for _, o in self.links}
        return tuple(o for o in range(len(self.out_blocks)) if o not in linked)

    @property
    def shared(self) -> int:
        """How many indices the map keeps (the order of its intermediate tensor)."""
        return len(self.links)


def _by_group(layout: EntryLayout) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, g in enumerate(layout.perm_groups):
        out.setdefault(g, []).append(i)
    return out


def enumerate_terms(spec: WeightSpec, in_key: str, out_key: str, dedupe: bool = True) -> list[Term]:
    """Every partition-basis map from `in_key` to `out_key` (see the module docstring)."""
    lin, lout = EntryLayout.of(spec.entries[in_key]), EntryLayout.of(spec.entries[out_key])
    gin, gout = _by_group(lin), _by_group(lout)
    names = sorted(set(gin) | set(gout), key=list(spec.groups).index)
    per_group = []
    for g in names:
        items = [("i", p) for p in gin.get(g, [])] + [("o", p) for p in gout.get(g, [])]
        parts = list(set_partitions(items))
        if dedupe:
            parts = [p for p in parts if len(p) <= spec.groups[g].size]
        per_group.append(parts)
    terms = []
    for choice in product(*per_group):
        blocks = [blk for part in choice for blk in part]
        ins = sorted((tuple(sorted(p for s, p in b if s == "i")), k) for k, b in enumerate(blocks) if any(s == "i" for s, _ in b))
        outs = sorted((tuple(sorted(p for s, p in b if s == "o")), k) for k, b in enumerate(blocks) if any(s == "o" for s, _ in b))
        in_index = {k: i for i, (_, k) in enumerate(ins)}
        out_index = {k: o for o, (_, k) in enumerate(outs)}
        links = tuple(sorted((in_index[k], out_index[k]) for k in in_index if k in out_index))
        terms.append(Term(in_key, out_key, tuple(b for b, _ in ins), tuple(b for b, _ in outs), links))
    return terms


def pool_partitions(spec: WeightSpec, key: str, dedupe: bool = True) -> list[tuple[tuple[int, ...], ...]]:
    """The invariant linear maps of one entry: partitions of its permuted factors, every block averaged."""
    layout = EntryLayout.of(spec.entries[key])
    per_group = []
    for g, items in _by_group(layout).items():
        parts = list(set_partitions(items))
        if dedupe:
            parts = [p for p in parts if len(p) <= spec.groups[g].size]
        per_group.append(parts)
    out = []
    for choice in product(*per_group):
        out.append(tuple(sorted(tuple(sorted(b)) for part in choice for b in part)))
    return out


class UNFBasis:
    """The equivariant linear maps between every pair of a spec's entries.

    Args:
        spec: the weight space (use `metanet_spec` to choose its entries).
        dedupe: keep an exact basis (drop terms that are dependent because a group is
            smaller than the partition's number of blocks); False keeps the whole
            partition spanning set.
        max_shared: drop terms that keep more than this many indices (their
            intermediate tensor has that order), to cap cost on high-order tensors.
        term_filter: a predicate on `Term`; terms it rejects are dropped (e.g. to
            leave out pairs of entries that should not interact).
    """

    def __init__(
        self,
        spec: WeightSpec,
        dedupe: bool = True,
        max_shared: int | None = None,
        term_filter: Callable[[Term], bool] | None = None,
    ):
        if max_shared is not None and max_shared < 0:
            raise ConfigError(f"UNFBasis: max_shared must be >= 0 or None, got {max_shared}")
        self.spec = spec
        self.dedupe = dedupe
        self.max_shared = max_shared
        self.layouts = {k: EntryLayout.of(e) for k, e in spec.entries.items()}
        self.terms: list[Term] = []
        for ik in spec.entries:
            for ok in spec.entries:
                for t in enumerate_terms(spec, ik, ok, dedupe):
                    if max_shared is not None and t.shared > max_shared:
                        continue
                    if term_filter is not None and not term_filter(t):
                        continue
                    self.terms.append(t)

    def count(self, in_key: str, out_key: str) -> int:
        """Number of basis maps from `in_key` to `out_key` (after dedupe and caps)."""
        return sum(1 for t in self.terms if t.in_key == in_key and t.out_key == out_key)

    def counts(self) -> dict[tuple[str, str], int]:
        """(in_key, out_key) -> number of basis maps."""
        out: dict[tuple[str, str], int] = {}
        for t in self.terms:
            out[(t.in_key, t.out_key)] = out.get((t.in_key, t.out_key), 0) + 1
        return out

    def spanning_count(self, in_key: str, out_key: str) -> int:
        """Size of the full partition spanning set for the pair: a product of Bell numbers."""
        gin, gout = _by_group(self.layouts[in_key]), _by_group(self.layouts[out_key])
        n = 1
        for g in set(gin) | set(gout):
            n *= bell(len(gin.get(g, [])) + len(gout.get(g, [])))
        return n

    def num_coefficients(self, in_channels: int, out_channels: int) -> int:
        """Scalar coefficients a layer learns: Σ over terms of (C_in·F_in)·(C_out·F_out)."""
        f = {k: lay.fixed_size for k, lay in self.layouts.items()}
        return sum(in_channels * f[t.in_key] * out_channels * f[t.out_key] for t in self.terms)

    def __len__(self) -> int:
        return len(self.terms)

    def __repr__(self) -> str:
        return f"UNFBasis({len(self.spec.entries)} entries, {len(self.terms)} terms, dedupe={self.dedupe})"
