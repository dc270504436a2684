"""Group elements: one permutation per group, plus optional sign/scale multipliers.

Convention: applying an element maps a tensor `x` along a permuted axis to
`x'[i] = m[i] ** power * x[perm[i]]` (m = sign or scale, default 1). Applying `h`
then `g` equals applying `g.compose(h)`... see `compose` for the exact order.
Every tensor may carry leading batch dimensions (one element per sample).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch


def _gather_last(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """t[..., index[..., i]] with broadcasting over leading batch dims."""
    shape = torch.broadcast_shapes(t.shape[:-1], index.shape[:-1])
    return torch.gather(t.expand(*shape, t.shape[-1]), -1, index.expand(*shape, index.shape[-1]))


@dataclass(frozen=True)
class GroupElement:
    """A permutation per group name (LongTensor of shape (*batch, n)), plus multipliers.

    Groups missing from `perms` are left alone; `signs` (±1) and `scales` (> 0) are
    float tensors of shape (*batch, n), applied only where the spec records the
    symmetry (see `Group.extra`).
    """

    perms: Mapping[str, torch.Tensor]
    signs: Mapping[str, torch.Tensor] = field(default_factory=dict)
    scales: Mapping[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self):
        for name, p in self.perms.items():
            if p.dtype != torch.long:
                raise TypeError(f"permutation of group {name!r} must be a LongTensor, got {p.dtype}")

    def compose(self, other: "GroupElement") -> "GroupElement":
        """The element equal to applying `other` first, then `self`."""
        perms = dict(other.perms)
        for name, pg in self.perms.items():
            ph = other.perms.get(name)
            perms[name] = pg if ph is None else _gather_last(ph, pg)

        def combine(mine: Mapping, theirs: Mapping) -> dict:
            out = {}
            for name in set(mine) | set(theirs):
                pg = self.perms.get(name)
                mh = theirs.get(name)
                if mh is not None and pg is not None:
                    mh = _gather_last(mh, pg)
                mg = mine.get(name)
                out[name] = mh if mg is None else (mg if mh is None else mg * mh)
            return out

        return GroupElement(perms, combine(self.signs, other.signs), combine(self.scales, other.scales))

    def inverse(self) -> "GroupElement":
        """The element that undoes this one."""
        inv = {name: torch.argsort(p, dim=-1) for name, p in self.perms.items()}

        def invert(mults: Mapping, reciprocal: bool) -> dict:
            out = {}
            for name, m in mults.items():
                q = inv.get(name)
                moved = m if q is None else _gather_last(m, q)
                out[name] = 1.0 / moved if reciprocal else moved
            return out

        return GroupElement(inv, invert(self.signs, False), invert(self.scales, True))

    def to(self, device=None) -> "GroupElement":
        move = lambda d: {k: v.to(device) for k, v in d.items()}  # noqa: E731
        return GroupElement(move(self.perms), move(self.signs), move(self.scales))

    def __repr__(self) -> str:
        parts = [f"{k}[{tuple(v.shape)}]" for k, v in self.perms.items()]
        extra = sorted(set(self.signs) | set(self.scales))
        return f"GroupElement({', '.join(parts)}{'; extra: ' + ', '.join(extra) if extra else ''})"
