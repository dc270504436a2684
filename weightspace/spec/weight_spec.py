"""`WeightSpec`: the one description of a weight space's symmetry group.

Every part of weightspace consumes it: metanetworks tie weights with it, alignment
matches along its groups, augmentation draws from it, graphs take their node sets
from it. It is immutable, prints readably, round-trips through JSON and owns the
group action (draw, apply, compose, invert).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping

import torch

from ..errors import KeyMismatchError, SpecError
from .action import apply_entry
from .element import GroupElement
from .parts import Entry, ExtraAction, Factor, FrozenAxis, Group

PROVENANCES = ("traced", "inferred", "manual")
# Largest axis or group size a spec read from JSON may name (bounds what `random_element` allocates).
MAX_SIZE = 2**31 - 1


def _int(n, key: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise SpecError(f"{key}: sizes must be integers, got {n!r}")
    if not 0 <= n <= MAX_SIZE:
        raise SpecError(f"{key}: size {n} is outside [0, {MAX_SIZE}]")
    return n


def _factor(f, key: str) -> Factor:
    if not isinstance(f, (list, tuple)) or len(f) != 2 or not (f[0] is None or isinstance(f[0], str)):
        raise SpecError(f"{key}: a factor must be [group or null, size], got {f!r}")
    return Factor(f[0], _int(f[1], key))
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Member:
    """Where a group acts: factor `factor` of axis `axis` of state-dict entry `key`."""

    key: str
    axis: int
    factor: int


@dataclass(frozen=True)
class WeightSpec:
    """Permutation-symmetry spec of a state dict.

    Args:
        entries: every state-dict entry (parameters and buffers), in state-dict order.
        groups: the permutation groups, by name.
        aliases: tied keys (e.g. an output head sharing the embedding) -> canonical key.
        frozen: why fixed axes are fixed, where the producer knew.
        provenance: "traced", "inferred" or "manual".
        verified: whether random group elements were checked on the model's outputs.
        notes: what the producer wants a reader to know (ops it froze, what verification measured).
    """

    entries: Mapping[str, Entry]
    groups: Mapping[str, Group]
    aliases: Mapping[str, str] = field(default_factory=dict)
    frozen: tuple[FrozenAxis, ...] = ()
    provenance: str = "manual"
    verified: bool = False
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        if self.provenance not in PROVENANCES:
            raise SpecError(f"unknown provenance {self.provenance!r}; expected one of {PROVENANCES}")
        for key, entry in self.entries.items():
            if key != entry.key:
                raise SpecError(f"entry stored under {key!r} is named {entry.key!r}")
            for i, axis in enumerate(entry.axes):
                for f in axis:
                    if f.group is None:
                        continue
                    g = self.groups.get(f.group)
                    if g is None:
                        raise SpecError(f"{key!r} axis {i} names unknown group {f.group!r}")
                    if g.size != f.size:
                        raise SpecError(
                            f"{key!r} axis {i}: factor of group {f.group!r} has size {f.size}, "
                            f"the group has size {g.size}"
                        )
        for alias, target in self.aliases.items():
            if target not in self.entries:
                raise SpecError(f"alias {alias!r} points to unknown entry {target!r}")
        for g in self.groups.values():
            for act in g.extra_action:
                e = self.entries.get(act.key)
                if e is None or act.axis >= len(e.axes) or all(f.group != g.name for f in e.axes[act.axis]):
                    raise SpecError(f"group {g.name!r}: extra action on {act.key!r} axis {act.axis} is not a member")
        # private copies, so later edits of the caller's dicts cannot reach the spec
        object.__setattr__(self, "entries", dict(self.entries))
        object.__setattr__(self, "groups", dict(self.groups))
        object.__setattr__(self, "aliases", dict(self.aliases))
        object.__setattr__(self, "frozen", tuple(self.frozen))
        object.__setattr__(self, "notes", tuple(self.notes))

    # ------------------------------------------------------------------ queries
    def members(self, group: str) -> list[Member]:
        """Every (key, axis, factor) the group acts on, in entry order."""
        if group not in self.groups:
            raise SpecError(f"unknown group {group!r}; the spec has {sorted(self.groups)}")
        return [
            Member(key, i, j)
            for key, e in self.entries.items()
            for i, axis in enumerate(e.axes)
            for j, f in enumerate(axis)
            if f.group == group
        ]

    def entry(self, key: str) -> Entry:
        """The entry of `key`, following aliases."""
        e = self.entries.get(self.aliases.get(key, key))
        if e is None:
            raise KeyMismatchError([key], [], where="spec")
        return e

    @property
    def keys(self) -> list[str]:
        return list(self.entries) + list(self.aliases)

    def num_parameters(self) -> int:
        return sum(int(torch.Size(e.shape).numel()) for e in self.entries.values() if not e.buffer)

    def check(self, state_dict: Mapping[str, torch.Tensor], batch_dims: int = 0, where: str = "state dict") -> None:
        """Raise a named error when `state_dict` does not have this spec's keys and shapes."""
        from ..errors import ShapeMismatchError

        missing = [k for k in self.entries if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self.entries and k not in self.aliases]
        if missing or unexpected:
            raise KeyMismatchError(missing, unexpected, where=where)
        for key, t in state_dict.items():
            shape = tuple(t.shape[batch_dims:])
            if shape != self.entry(key).shape:
                raise ShapeMismatchError(key, self.entry(key).shape, shape, where=where)

    # ------------------------------------------------------------------ action
    def identity(self) -> GroupElement:
        return GroupElement({n: torch.arange(g.size) for n, g in self.groups.items()})

    def random_element(
        self,
        generator: torch.Generator | None = None,
        extra: bool = False,
        batch_shape: Iterable[int] = (),
        scale_range: tuple[float, float] = (0.5, 2.0),
    ) -> GroupElement:
        """Draw a uniformly random permutation of every group.

        extra=True also draws the recorded extra symmetries: uniform signs, and
        log-uniform positive scales in `scale_range`. batch_shape gives one
        independent element per sample (for batched weights).
        """
        batch_shape = tuple(batch_shape)
        perms, signs, scales = {}, {}, {}
        for name, g in self.groups.items():
            if batch_shape:
                perms[name] = torch.argsort(torch.rand(*batch_shape, g.size, generator=generator), dim=-1)
            else:
                perms[name] = torch.randperm(g.size, generator=generator)
            if not extra:
                continue
            if "sign" in g.extra:
                bits = torch.randint(0, 2, (*batch_shape, g.size), generator=generator)
                signs[name] = bits.to(torch.get_default_dtype()) * 2 - 1
            if "scale" in g.extra:
                lo, hi = torch.log(torch.tensor(scale_range, dtype=torch.float64))
                u = torch.rand(*batch_shape, g.size, generator=generator, dtype=torch.float64)
                scales[name] = torch.exp(lo + (hi - lo) * u).to(torch.get_default_dtype())
        return GroupElement(perms, signs, scales)

    def apply(
        self,
        state_dict: Mapping[str, torch.Tensor],
        g: GroupElement,
        batch_dims: int = 0,
        *,
        strict: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Return a new state dict with `g` applied; the input is never modified.

        Keys the spec does not know raise KeyMismatchError, and so do entries of the
        spec the dict lacks, unless strict=False (a partial apply, as
        `load_state_dict(strict=False)`: those keys are absent from the result). Tensors
        may carry `batch_dims` leading batch dimensions (stacked zoo samples).
        """
        unknown = [k for k in state_dict if k not in self.entries and k not in self.aliases]
        missing = [k for k in self.entries if k not in state_dict] if strict else []
        if unknown or missing:
            raise KeyMismatchError(missing, unknown, where="WeightSpec.apply")
        unknown_groups = [n for n in (*g.perms, *g.signs, *g.scales) if n not in self.groups]
        if unknown_groups:
            raise SpecError(f"group element names groups the spec lacks: {sorted(set(unknown_groups))}")
        mults = self._multipliers(g)
        return {
            key: apply_entry(
                self.entry(key), t, g, self.groups, batch_dims, mults, extra_for_key=self.aliases.get(key, key)
            )
            for key, t in state_dict.items()
        }

    def _multipliers(self, g: GroupElement) -> dict[str, torch.Tensor]:
        """sign × scale per group, each only where the group records that symmetry."""
        out: dict[str, torch.Tensor] = {}
        for name, group in self.groups.items():
            parts = [d[name] for kind, d in (("sign", g.signs), ("scale", g.scales)) if kind in group.extra and name in d]
            if parts:
                out[name] = parts[0] if len(parts) == 1 else parts[0] * parts[1]
        return out

    # ------------------------------------------------------------------ editing
    def without_extras(self) -> "WeightSpec":
        """The same spec with every sign/scale symmetry removed."""
        groups = {n: replace(g, extra=(), extra_action=()) for n, g in self.groups.items()}
        return replace(self, groups=groups)

    def with_status(self, verified: bool) -> "WeightSpec":
        return replace(self, verified=verified)

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict:
        return {
            "format": "weightspace.spec",
            "version": FORMAT_VERSION,
            "provenance": self.provenance,
            "verified": self.verified,
            "entries": [
                {
                    "key": e.key,
                    "shape": list(e.shape),
                    "axes": [[[f.group, f.size] for f in axis] for axis in e.axes],
                    "buffer": e.buffer,
                }
                for e in self.entries.values()
            ],
            "groups": [
                {
                    "name": g.name,
                    "size": g.size,
                    "kind": g.kind,
                    "extra": list(g.extra),
                    "extra_action": [[a.key, a.axis, a.power] for a in g.extra_action],
                }
                for g in self.groups.values()
            ],
            "aliases": dict(self.aliases),
            "frozen": [[f.key, f.axis, f.reason] for f in self.frozen],
            "notes": list(self.notes),
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: Mapping) -> "WeightSpec":
        if not isinstance(d, Mapping):
            raise SpecError(f"a spec must be a JSON object, got {type(d).__name__}")
        if d.get("format") != "weightspace.spec":
            raise SpecError("not a weightspace spec (missing format tag 'weightspace.spec')")
        if d.get("version") != FORMAT_VERSION:
            raise SpecError(f"spec format version {d.get('version')} is not supported (expected {FORMAT_VERSION})")
        try:
            entries = {
                e["key"]: Entry(
                    e["key"],
                    tuple(_int(n, e["key"]) for n in e["shape"]),
                    tuple(tuple(_factor(f, e["key"]) for f in axis) for axis in e["axes"]),
                    bool(e.get("buffer", False)),
                )
                for e in d["entries"]
            }
            aliases = d.get("aliases", {})
            if not isinstance(aliases, Mapping):
                raise SpecError(f"'aliases' must be an object, got {type(aliases).__name__}")
            groups = {
                g["name"]: Group(
                    g["name"],
                    _int(g["size"], f"group {g['name']!r}"),
                    g.get("kind", "unit"),
                    tuple(g.get("extra", ())),
                    tuple(ExtraAction(k, int(a), int(p)) for k, a, p in g.get("extra_action", ())),
                )
                for g in d["groups"]
            }
            frozen = tuple(FrozenAxis(k, int(a), r) for k, a, r in d.get("frozen", ()))
        except SpecError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise SpecError(f"malformed spec JSON: {type(err).__name__}: {err}") from err
        notes = d.get("notes", ())
        if not isinstance(notes, (list, tuple)) or not all(isinstance(n, str) for n in notes):
            raise SpecError("'notes' must be a list of strings")
        acted_on = {f.group for e in entries.values() for axis in e.axes for f in axis}
        idle = sorted(n for n in groups if n not in acted_on)
        if idle:
            raise SpecError(f"groups {idle[:8]} act on no entry; a group's size must match its members")
        return cls(
            entries,
            groups,
            aliases,
            frozen,
            d.get("provenance", "manual"),
            bool(d.get("verified", False)),
            tuple(notes),
        )

    @classmethod
    def from_json(cls, text: str) -> "WeightSpec":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError(f"spec is not valid JSON: {err}") from err
        except RecursionError:
            raise SpecError("spec JSON nests too deeply") from None
        return cls.from_dict(d)

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        groups = ", ".join(f"{n}:{g.size}" for n, g in self.groups.items())
        return (
            f"WeightSpec({len(self.entries)} entries, {len(self.groups)} groups [{groups}], "
            f"{self.provenance}{', verified' if self.verified else ''})"
        )
