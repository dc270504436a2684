"""Union-find over tensor-axis factors, with refinement.

Every axis of every traced tensor is a list of *atoms* (row-major factors). Ops
unify atoms (the same permutation must act on both) or fix them (no permutation
may act). When two axes with different factorizations must agree, e.g. a flat
axis of 384 and a (6, 64) view of it, the coarser atom is *split* into sub-atoms so
that both sides share the finer factorization; where no common refinement exists
(6×4 against 4×6) the atoms involved are fixed. What survives unfixed at the end
are the permutation groups.

Splits are stored on the class root, so every atom unified with a split atom sees
the same sub-atoms. Sub-atoms are strictly smaller than their parent, so expansion
never cycles.
"""
from __future__ import annotations

from collections import deque
from math import prod
from typing import Iterable


class Atoms:
    """The union-find store. Atom ids are ints; sizes are > 1 except where stated."""

    def __init__(self) -> None:
        self._parent: list[int] = []
        self._size: list[int] = []
        self._expansion: dict[int, list[int]] = {}
        self._fixed: dict[int, str] = {}
        self.hints: dict[int, set[str]] = {}

    # ------------------------------------------------------------------ basics
    def new(self, size: int, fixed: str | None = None) -> int:
        a = len(self._parent)
        self._parent.append(a)
        self._size.append(int(size))
        if fixed is not None:
            self._fixed[a] = fixed
        return a

    def axis(self, size: int, fixed: str | None = None) -> list[int]:
        """A fresh factor list for an axis of `size` (empty for size 0/1)."""
        return [self.new(size, fixed)] if size > 1 else []

    def find(self, a: int) -> int:
        root = a
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[a] != root:
            self._parent[a], a = root, self._parent[a]
        return root

    def size(self, a: int) -> int:
        return self._size[self.find(a)]

    def leaves(self, atoms: Iterable[int]) -> list[int]:
        """Resolve a factor list to the roots of its finest atoms."""
        out: list[int] = []
        stack = list(reversed(list(atoms)))
        while stack:
            r = self.find(stack.pop())
            sub = self._expansion.get(r)
            if sub is None:
                out.append(r)
            else:
                stack.extend(reversed(sub))
        return out

    def fixed_reason(self, a: int) -> str | None:
        return self._fixed.get(self.find(a))

    def hint(self, atoms: Iterable[int], kind: str) -> None:
        for leaf in self.leaves(atoms):
            self.hints.setdefault(leaf, set()).add(kind)

    # ------------------------------------------------------------------ constraints
    def fix(self, atoms: Iterable[int], reason: str) -> None:
        """No permutation may act on these atoms (nor on anything unified with them)."""
        for leaf in self.leaves(atoms):
            self._fixed.setdefault(leaf, reason)

    def _split(self, a: int, sizes: list[int]) -> list[int]:
        r = self.find(a)
        sub = [self.new(s) for s in sizes]
        self._expansion[r] = sub
        reason = self._fixed.get(r)
        if reason is not None:
            for s in sub:
                self._fixed[s] = reason
        kinds = self.hints.get(r)
        if kinds:
            for s in sub:
                self.hints.setdefault(s, set()).update(kinds)
        return sub

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self._size[ra] != self._size[rb]:
            raise ValueError(f"cannot unify atoms of sizes {self._size[ra]} and {self._size[rb]}")
        self._parent[rb] = ra
        reason = self._fixed.get(ra) or self._fixed.pop(rb, None)
        if rb in self.hints:
            self.hints.setdefault(ra, set()).update(self.hints.pop(rb))
        ea, eb = self._expansion.get(ra), self._expansion.pop(rb, None)
        if eb is not None:
            if ea is None:
                self._expansion[ra] = eb
            else:
                self.unify(ea, eb, reason="incompatible factorizations")
        if reason is not None:
            self._fixed[ra] = reason
            if ra in self._expansion:
                self.fix([ra], reason)

    def unify(self, left: Iterable[int], right: Iterable[int], reason: str = "incompatible factorizations") -> bool:
        """Make two factor lists of equal total size act identically.

        Refines coarser atoms where the finer side's boundaries divide them; where
        they do not, fixes every atom still unmatched and returns False.
        """
        a_q, b_q = deque(self.leaves(left)), deque(self.leaves(right))
        total_a = prod(self._size[x] for x in a_q)
        total_b = prod(self._size[x] for x in b_q)
        if total_a != total_b:
            raise ValueError(f"cannot unify axes of sizes {total_a} and {total_b}")
        while a_q and b_q:
            a, b = self.find(a_q.popleft()), self.find(b_q.popleft())
            if a in self._expansion:
                a_q.extendleft(reversed(self._expansion[a]))
                b_q.appendleft(b)
                continue
            if b in self._expansion:
                b_q.extendleft(reversed(self._expansion[b]))
                a_q.appendleft(a)
                continue
            sa, sb = self._size[a], self._size[b]
            if sa == sb:
                self.union(a, b)
            elif sb % sa == 0:
                head, tail = self._split(b, [sa, sb // sa])
                self.union(a, head)
                b_q.appendleft(tail)
            elif sa % sb == 0:
                head, tail = self._split(a, [sb, sa // sb])
                self.union(head, b)
                a_q.appendleft(tail)
            else:
                self.fix([a, b, *a_q, *b_q], reason)
                return False
        return True

    def view(self, atoms: list[int], sizes: list[int]) -> list[list[int]]:
        """Carve a factor list into consecutive axes of the given sizes (for reshapes)."""
        out = [self.axis(s) for s in sizes]
        self.unify(atoms, [a for axis in out for a in axis], reason="reshape across factor boundaries")
        return out
