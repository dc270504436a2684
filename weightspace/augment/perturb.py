"""Augmentations that change the function by a controlled amount: noise, weight
dropout, magnitude pruning. They act on parameters, never on buffers (BatchNorm
running statistics stay as they are)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import KeyMismatchError
from ..spec import WeightSpec
from .base import StateDict, Transform, batch_shape


def _targets(spec: WeightSpec, sd: StateDict, keys: Sequence[str] | None, min_dim: int) -> list[str]:
    """The keys a perturbation touches: parameters of at least `min_dim` dims (or `keys`)."""
    if keys is not None:
        missing = [k for k in keys if k not in sd]
        if missing:
            raise KeyMismatchError(missing, [], where="perturbation keys")
        return list(keys)
    return [k for k in sd if not spec.entry(k).buffer and len(spec.entry(k).shape) >= min_dim]


def _draw(shape, generator, like: torch.Tensor, kind: str) -> torch.Tensor:
    """Random numbers from `generator` (on its device), moved to `like`'s device and dtype."""
    device = generator.device if generator is not None else like.device
    make = torch.randn if kind == "normal" else torch.rand
    return make(shape, generator=generator, device=device, dtype=torch.float32).to(like.device, like.dtype)


def _flat(t: torch.Tensor, lead: tuple[int, ...]) -> torch.Tensor:
    return t.reshape(*lead, -1) if lead else t.reshape(1, -1)


@dataclass
class GaussianNoise(Transform):
    """Add N(0, (std · rms(w))²) to each tensor w, rms taken per tensor and sample.

    The relative change of each tensor is therefore about `std`. Tensors with fewer
    than `min_dim` dims (biases, norm scales, by default included) can be left out.
    """

    spec: WeightSpec
    std: float = 0.01
    keys: Sequence[str] | None = None
    min_dim: int = 1

    preserves_function = False

    def apply(self, sd: StateDict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        lead = batch_shape(self.spec, sd)
        out = dict(sd)
        for key in _targets(self.spec, sd, self.keys, self.min_dim):
            t = sd[key]
            rms = _flat(t, lead).pow(2).mean(-1).sqrt().reshape(*lead, *([1] * (t.dim() - len(lead))))
            out[key] = t + self.std * rms * _draw(t.shape, generator, t, "normal")
        return out


@dataclass
class WeightDropout(Transform):
    """Zero each weight independently with probability `p` (no rescaling: a weight
    space sample is a network, not an activation)."""

    spec: WeightSpec
    p: float = 0.05
    keys: Sequence[str] | None = None
    min_dim: int = 2

    preserves_function = False

    def apply(self, sd: StateDict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        batch_shape(self.spec, sd)
        out = dict(sd)
        for key in _targets(self.spec, sd, self.keys, self.min_dim):
            t = sd[key]
            keep = _draw(t.shape, generator, t, "uniform") >= self.p
            out[key] = t * keep
        return out


@dataclass
class MagnitudePruning(Transform):
    """Zero the smallest-magnitude fraction of each tensor, the fraction drawn per
    sample uniformly from `fraction` (a range, or equal ends for a fixed amount)."""

    spec: WeightSpec
    fraction: tuple[float, float] = (0.0, 0.1)
    keys: Sequence[str] | None = None
    min_dim: int = 2

    preserves_function = False

    def apply(self, sd: StateDict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        lead = batch_shape(self.spec, sd)
        lo, hi = self.fraction
        frac = lo + (hi - lo) * torch.rand(lead or (1,), generator=generator, dtype=torch.float64)
        out = dict(sd)
        for key in _targets(self.spec, sd, self.keys, self.min_dim):
            t = sd[key]
            flat = _flat(t, lead)
            n = flat.shape[-1]
            count = torch.floor(frac * n).long().to(t.device)
            rank = flat.abs().argsort(dim=-1, stable=True).argsort(dim=-1)
            pruned = torch.where(rank < count[:, None], torch.zeros_like(flat), flat)
            out[key] = pruned.reshape(t.shape)
        return out
