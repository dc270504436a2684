"""What every augmentation is: a callable on weight-space samples (one state dict, a
stacked batch, or a `WeightSpaceBatch`) that says whether it preserves the network's function."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping, Sequence

import torch

from ..errors import ShapeMismatchError
from ..nn.batch import WeightSpaceBatch
from ..spec import WeightSpec

StateDict = Mapping[str, torch.Tensor]


def batch_shape(spec: WeightSpec, sd: StateDict) -> tuple[int, ...]:
    """The leading batch shape of `sd` against `spec`: () for one sample, (B,) for a batch.

    Every tensor must carry the same one; more than one batch dim is refused (flatten
    them first), so that each sample gets its own random draw."""
    lead: tuple[int, ...] | None = None
    for key, t in sd.items():
        entry = spec.entry(key)
        extra = t.dim() - len(entry.shape)
        if extra < 0 or tuple(t.shape[extra:]) != tuple(entry.shape):
            raise ShapeMismatchError(key, tuple(entry.shape), tuple(t.shape), where="augmentation")
        here = tuple(t.shape[:extra])
        if lead is None:
            lead = here
        elif here != lead:
            raise ShapeMismatchError(key, lead + tuple(entry.shape), tuple(t.shape), where="augmentation (batch shape)")
    lead = lead or ()
    if len(lead) > 1:
        key = next(iter(sd))
        raise ShapeMismatchError(key, ("B", *spec.entry(key).shape), tuple(sd[key].shape),
                                 where="augmentation (one sample or one batch dim; flatten the others)")
    return lead


def as_stacked(x) -> StateDict:
    """The augmentations' layout, (*shape) or (B, *shape) per key, of a state dict or of a
    one-channel `WeightSpaceBatch`."""
    if not isinstance(x, WeightSpaceBatch):
        return x
    if x.channels != 1:
        key = next(iter(x.tensors))
        raise ShapeMismatchError(key, ("B", 1, *x.spec.entries[key].shape), tuple(x.tensors[key].shape),
                                 where="augmentation (a WeightSpaceBatch of one channel)")
    return x.to_stacked(0)


def like(x, sd: StateDict):
    """`sd` as the kind of input `x` was: a `WeightSpaceBatch` again, or the dict itself."""
    return WeightSpaceBatch.from_stacked(x.spec, sd) if isinstance(x, WeightSpaceBatch) else sd


class Transform:
    """An augmentation of weight-space samples.

    Call with a state dict whose tensors are shaped like the spec's entries, optionally
    with one leading batch dim, or with a one-channel `WeightSpaceBatch`, and a
    torch.Generator; returns the same kind (inputs are never modified). Subclasses
    implement `apply` on the dict layout. `preserves_function` is the transform's
    declared effect, which the tests check: True means every output network computes
    the input network's function.
    """

    preserves_function: ClassVar[bool] = False

    def __call__(self, x, generator: torch.Generator | None = None):
        return like(x, self.apply(as_stacked(x), generator))

    def apply(self, sd: StateDict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The transform of a (*shape) or (B, *shape) state dict."""
        raise NotImplementedError


@dataclass
class Compose(Transform):
    """Apply transforms in order; preserves the function when all of them do."""

    transforms: Sequence[Transform]

    @property
    def preserves_function(self) -> bool:  # type: ignore[override]
        return all(t.preserves_function for t in self.transforms)

    def apply(self, sd: StateDict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        out = dict(sd)
        for t in self.transforms:
            out = t.apply(out, generator)
        return out


@dataclass
class RandomApply(Transform):
    """Apply `transform` to each sample with probability `p` (per sample in a batch)."""

    spec: WeightSpec
    transform: Transform
    p: float = 0.5

    @property
    def preserves_function(self) -> bool:  # type: ignore[override]
        return self.transform.preserves_function

    def apply(self, sd: StateDict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        lead = batch_shape(self.spec, sd)
        chosen = torch.rand(lead, generator=generator) < self.p
        changed = self.transform.apply(sd, generator)
        if not lead:
            return changed if bool(chosen) else dict(sd)
        out = {}
        for key, t in sd.items():
            mask = chosen.to(t.device).reshape(-1, *([1] * (t.dim() - 1)))
            out[key] = torch.where(mask, changed[key], t)
        return out
