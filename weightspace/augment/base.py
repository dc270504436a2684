"""What every augmentation is: a callable on a state dict (one sample or a batch) that
says whether it preserves the network's function."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping, Sequence

import torch

from ..errors import ShapeMismatchError
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
        raise ValueError(f"augmentations take one sample or a batch (B, *shape); got batch shape {lead}")
    return lead


class Transform:
    """An augmentation of weight-space samples.

    Call with a state dict whose tensors are shaped like the spec's entries, optionally
    with one leading batch dim, and a torch.Generator; returns a new dict (inputs are
    never modified). `preserves_function` is the transform's declared effect, which the
    tests check: True means every output network computes the input network's function.
    """

    preserves_function: ClassVar[bool] = False

    def __call__(self, sd: StateDict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        raise NotImplementedError


@dataclass
class Compose(Transform):
    """Apply transforms in order; preserves the function when all of them do."""

    transforms: Sequence[Transform]

    @property
    def preserves_function(self) -> bool:  # type: ignore[override]
        return all(t.preserves_function for t in self.transforms)

    def __call__(self, sd: StateDict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        out = dict(sd)
        for t in self.transforms:
            out = t(out, generator)
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

    def __call__(self, sd: StateDict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        lead = batch_shape(self.spec, sd)
        chosen = torch.rand(lead, generator=generator) < self.p
        changed = self.transform(sd, generator)
        if not lead:
            return changed if bool(chosen) else dict(sd)
        out = {}
        for key, t in sd.items():
            mask = chosen.to(t.device).reshape(-1, *([1] * (t.dim() - 1)))
            out[key] = torch.where(mask, changed[key], t)
        return out
