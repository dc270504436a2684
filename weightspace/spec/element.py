"""Group elements: one permutation per group, plus optional sign/scale multipliers.

Convention: applying an element maps a tensor `x` along a permuted axis to
`x'[i] = m[i] ** power * x[perm[i]]` (m = sign or scale, default 1). Applying `h`
then `g` equals applying `g.compose(h)`... see `compose` for the exact order.
Every tensor may carry leading batch dimensions (one element per sample).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import torch

from ..errors import InputTypeError, SpecError

_PARTS = (("perm", "perms"), ("sign", "signs"), ("scale", "scales"))


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
                raise InputTypeError(f"permutation of group {name!r} must be a LongTensor, got {p.dtype}")

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
        return self._map(lambda t: t.to(device))

    # ------------------------------------------------------------------ parts and batches
    def _map(self, fn) -> "GroupElement":
        """The element with `fn` applied to every permutation and multiplier tensor."""
        move = lambda d: {k: fn(v) for k, v in d.items()}  # noqa: E731
        return GroupElement(move(self.perms), move(self.signs), move(self.scales))

    def restrict(self, names: Iterable[str]) -> "GroupElement":
        """The part of this element acting on the groups `names` (others left alone)."""
        keep = set(names)
        pick = lambda d: {k: v for k, v in d.items() if k in keep}  # noqa: E731
        return GroupElement(pick(self.perms), pick(self.signs), pick(self.scales))

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The leading batch shape of the tensors, () for one element (or an empty one)."""
        first = next(iter((*self.perms.values(), *self.signs.values(), *self.scales.values())), None)
        return () if first is None else tuple(first.shape[:-1])

    def unsqueeze(self, dim: int) -> "GroupElement":
        """Insert a batch dim of size 1 at `dim` of the batch shape (negative dims count from its end)."""
        def insert(t: torch.Tensor) -> torch.Tensor:
            batch = t.dim() - 1
            at = dim + batch + 1 if dim < 0 else dim
            if not 0 <= at <= batch:
                raise SpecError(f"unsqueeze dim {dim} is out of range for batch shape {tuple(t.shape[:-1])}")
            return t.unsqueeze(at)

        return self._map(insert)

    def expand(self, *batch_shape: int) -> "GroupElement":
        """The element broadcast to `batch_shape` (a view; one element becomes one per sample)."""
        return self._map(lambda t: t.expand(*batch_shape, t.shape[-1]))

    def index(self, i) -> "GroupElement":
        """The element(s) at index `i` of the leading batch dim (an int, slice or index tensor)."""
        if not self.batch_shape and (self.perms or self.signs or self.scales):
            raise SpecError("index needs a batched element (tensors shaped (*batch, n))")
        return self._map(lambda t: t[i])

    @classmethod
    def stack(cls, elements: Sequence["GroupElement"]) -> "GroupElement":
        """One batched element from equally shaped elements with the same groups (new leading dim)."""
        if not elements:
            raise SpecError("stack needs at least one group element")
        parts = []
        for _, attr in _PARTS:
            names = getattr(elements[0], attr)
            if any(set(getattr(e, attr)) != set(names) for e in elements):
                raise SpecError(f"stack: the elements name different groups in {attr}")
            parts.append({n: torch.stack([getattr(e, attr)[n] for e in elements]) for n in names})
        return cls(*parts)

    # ------------------------------------------------------------------ serialization
    def to_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Flat `{prefix}perm/{group}`, `{prefix}sign/{group}`, `{prefix}scale/{group}` tensors (for safetensors)."""
        return {f"{prefix}{kind}/{n}": t for kind, attr in _PARTS for n, t in getattr(self, attr).items()}

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor], prefix: str = "") -> "GroupElement":
        """The element `to_tensors(prefix)` wrote; keys without the prefix are ignored."""
        parts: dict[str, dict[str, torch.Tensor]] = {attr: {} for _, attr in _PARTS}
        kinds = dict(_PARTS)
        for key, t in tensors.items():
            if not key.startswith(prefix):
                continue
            kind, _, name = key[len(prefix):].partition("/")
            if kind not in kinds or not name:
                raise SpecError(f"{key!r} is not a stored group element tensor ({prefix}perm|sign|scale/GROUP)")
            parts[kinds[kind]][name] = t
        return cls(parts["perms"], parts["signs"], parts["scales"])

    def to_dict(self) -> dict:
        """{"perms": {group: [...]}}, with "signs"/"scales" when present (nested lists when batched)."""
        out = {"perms": {n: p.tolist() for n, p in self.perms.items()}}
        for _, attr in _PARTS[1:]:
            if getattr(self, attr):
                out[attr] = {n: s.tolist() for n, s in getattr(self, attr).items()}
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping) -> "GroupElement":
        try:
            return cls(
                {n: torch.tensor(p, dtype=torch.long) for n, p in d["perms"].items()},
                {n: torch.tensor(s) for n, s in d.get("signs", {}).items()},
                {n: torch.tensor(s) for n, s in d.get("scales", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise SpecError(f"not a stored group element: {type(err).__name__}: {err}") from err

    @classmethod
    def from_json(cls, text: str) -> "GroupElement":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError(f"a stored group element is not valid JSON: {err}") from err
        return cls.from_dict(d)

    def __repr__(self) -> str:
        parts = [f"{k}[{tuple(v.shape)}]" for k, v in self.perms.items()]
        extra = sorted(set(self.signs) | set(self.scales))
        return f"GroupElement({', '.join(parts)}{'; extra: ' + ', '.join(extra) if extra else ''})"
