"""`WeightSpaceBatch`: many weight-space points of one spec, channels first.

The one batch type of the library. Every metanetwork layer reads and writes a plain
dict `key -> (B, C, *entry.shape)`; this type builds such dicts from state dicts or
stacked zoo samples `(B, *shape)`, checks them against the spec, gives the graph
metanetworks their inputs (`graph`), is what the augmentations transform, and turns
per-entry outputs back into state dicts (for weight editing and learned optimizers).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import torch

from ..errors import ConfigError, KeyMismatchError, ShapeMismatchError, SpecError
from ..spec import GroupElement, WeightSpec

if TYPE_CHECKING:
    from ..graph.structure import GraphStructure
    from .gmn.inputs import GraphInputs


def metanet_spec(spec: WeightSpec, include_buffers: bool = False, keys: Iterable[str] | None = None) -> WeightSpec:
    """The part of `spec` a metanetwork reads.

    By default every parameter; `include_buffers` adds buffers of rank >= 1 (BatchNorm
    running statistics) but never scalar buffers such as `num_batches_tracked`
    counters. `keys` picks entries explicitly instead. Aliases of dropped entries and
    the extra symmetries' actions on them are dropped too.
    """
    if keys is not None:
        wanted = list(keys)
        unknown = [k for k in wanted if k not in spec.entries]
        if unknown:
            raise KeyMismatchError([], unknown, where="metanet_spec")
    else:
        wanted = [
            k for k, e in spec.entries.items() if not e.buffer or (include_buffers and len(e.shape) > 0)
        ]
    if not wanted:
        raise SpecError("metanet_spec: no entries left to read (the spec has no parameters)")
    kept = set(wanted)
    entries = {k: spec.entries[k] for k in spec.entries if k in kept}
    groups = {}
    for name, g in spec.groups.items():
        actions = tuple(a for a in g.extra_action if a.key in kept)
        groups[name] = replace(g, extra=g.extra if actions else (), extra_action=actions)
    used = {f.group for e in entries.values() for axis in e.axes for f in axis if f.group is not None}
    groups = {n: g for n, g in groups.items() if n in used}
    aliases = {a: t for a, t in spec.aliases.items() if t in kept}
    return replace(spec, entries=entries, groups=groups, aliases=aliases)


def check_features(spec: WeightSpec, x: Mapping[str, torch.Tensor], channels: int | None, where: str) -> int:
    """Check that `x` holds exactly `spec`'s entries as (B, C, *shape); return B."""
    missing = [k for k in spec.entries if k not in x]
    unexpected = [k for k in x if k not in spec.entries]
    if missing or unexpected:
        raise KeyMismatchError(missing, unexpected, where=where)
    batch = None
    for key, entry in spec.entries.items():
        t = x[key]
        if t.dim() != 2 + len(entry.shape) or tuple(t.shape[2:]) != entry.shape:
            raise ShapeMismatchError(key, ("B", "C", *entry.shape), tuple(t.shape), where=where)
        if channels is not None and t.shape[1] != channels:
            raise ShapeMismatchError(key, ("B", channels, *entry.shape), tuple(t.shape), where=where)
        if batch is None:
            batch = t.shape[0]
        elif t.shape[0] != batch:
            raise ShapeMismatchError(key, (batch, "C", *entry.shape), tuple(t.shape), where=f"{where} (batch size)")
    return int(batch)


@dataclass(frozen=True)
class WeightSpaceBatch:
    """B weight-space points of `spec`, one tensor (B, C, *entry.shape) per entry.

    Build with `from_state_dicts` (a list of single-model state dicts) or
    `from_stacked` (a dict of (B, *shape) tensors, e.g. zoo samples); read back with
    `to_state_dicts` / `to_stacked`.
    """

    spec: WeightSpec
    tensors: Mapping[str, torch.Tensor]

    def __post_init__(self):
        check_features(self.spec, self.tensors, None, "WeightSpaceBatch")
        channels = {t.shape[1] for t in self.tensors.values()}
        if len(channels) != 1:
            raise SpecError(f"WeightSpaceBatch: every entry needs the same channel count, got {sorted(channels)}")
        object.__setattr__(self, "tensors", dict(self.tensors))

    @classmethod
    def from_stacked(cls, spec: WeightSpec, stacked: Mapping[str, torch.Tensor], dtype: torch.dtype | None = None) -> "WeightSpaceBatch":
        """From `key -> (B, *shape)` tensors (keys outside `spec` are ignored); adds C=1."""
        missing = [k for k in spec.entries if k not in stacked]
        if missing:
            raise KeyMismatchError(missing, [], where="WeightSpaceBatch.from_stacked")
        tensors = {}
        for k in spec.entries:
            t = stacked[k]
            tensors[k] = (t.to(dtype) if dtype is not None else t).unsqueeze(1)
        return cls(spec, tensors)

    @classmethod
    def from_state_dicts(
        cls, spec: WeightSpec, state_dicts: Sequence[Mapping[str, torch.Tensor]], dtype: torch.dtype | None = torch.float32
    ) -> "WeightSpaceBatch":
        """From a list of single-model state dicts (extra keys such as counters are ignored)."""
        if len(state_dicts) == 0:
            raise ConfigError("WeightSpaceBatch.from_state_dicts: no state dicts given")
        stacked = {}
        for k, entry in spec.entries.items():
            parts = []
            for i, sd in enumerate(state_dicts):
                if k not in sd:
                    raise KeyMismatchError([k], [], where=f"state dict {i}")
                if tuple(sd[k].shape) != entry.shape:
                    raise ShapeMismatchError(k, entry.shape, tuple(sd[k].shape), where=f"state dict {i}")
                parts.append(sd[k].detach())
            stacked[k] = torch.stack(parts)
        return cls.from_stacked(spec, stacked, dtype)

    @property
    def batch_size(self) -> int:
        return int(next(iter(self.tensors.values())).shape[0])

    @property
    def channels(self) -> int:
        return int(next(iter(self.tensors.values())).shape[1])

    def to_stacked(self, channel: int | None = 0) -> dict[str, torch.Tensor]:
        """`key -> (B, *shape)` for one channel, or (B, C, *shape) with channel=None."""
        if channel is None:
            return dict(self.tensors)
        return {k: t[:, channel] for k, t in self.tensors.items()}

    def to_state_dicts(self, channel: int = 0) -> list[dict[str, torch.Tensor]]:
        """One state dict per sample, holding channel `channel` of every entry."""
        stacked = self.to_stacked(channel)
        return [{k: t[i] for k, t in stacked.items()} for i in range(self.batch_size)]

    def apply(self, g: GroupElement) -> "WeightSpaceBatch":
        """The batch with `g` applied (one element for all, or batched with shape (B, n))."""
        batched = any(p.dim() > 1 for p in g.perms.values())
        if batched:
            g = g.unsqueeze(-1)
        return WeightSpaceBatch(self.spec, self.spec.apply(self.tensors, g, batch_dims=2))

    def graph(self, structure: "GraphStructure") -> "GraphInputs":
        """The batch as B parameter graphs of `structure` (one channel): the tensors the
        graph metanetworks read, built from the structure's tables without a PyG object."""
        from ..graph.build import flatten_values
        from .gmn.inputs import GraphInputs

        if self.channels != 1:
            key = next(iter(self.tensors))
            raise ShapeMismatchError(key, ("B", 1, *self.spec.entries[key].shape), tuple(self.tensors[key].shape),
                                     where="WeightSpaceBatch.graph (one channel)")
        carried = [e.key for e in structure.entries if e.carried]
        missing = [k for k in carried if k not in self.tensors]
        if missing:
            raise KeyMismatchError(missing, [], where="WeightSpaceBatch.graph (entries of the graph structure)")
        values = flatten_values(structure, {k: self.tensors[k][:, 0] for k in carried}, batch_dims=1)
        return GraphInputs.from_values(structure, values)

    def map(self, fn) -> "WeightSpaceBatch":
        return WeightSpaceBatch(self.spec, {k: fn(t) for k, t in self.tensors.items()})

    def to(self, *args, **kwargs) -> "WeightSpaceBatch":
        return self.map(lambda t: t.to(*args, **kwargs))

    def __repr__(self) -> str:
        return f"WeightSpaceBatch(B={self.batch_size}, C={self.channels}, {len(self.tensors)} entries)"


def as_features(x) -> dict[str, torch.Tensor]:
    """A layer's input as a plain dict: a `WeightSpaceBatch`'s tensors or the mapping itself."""
    return dict(x.tensors) if isinstance(x, WeightSpaceBatch) else dict(x)
