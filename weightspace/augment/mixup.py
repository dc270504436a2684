"""Mixup in weight space (Shamsian et al.): plain, after a random group element, and
aligned by weight matching, with the labels mixed by the same weights."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ..errors import ConfigError, ShapeMismatchError
from ..spec import WeightSpec
from .base import StateDict, as_stacked, batch_shape, like

MODES = ("plain", "permuted", "aligned")


@dataclass
class Mixup:
    """Mix each sample of a batch with a partner drawn from the same batch.

    λ ~ Beta(alpha, alpha) per sample; the result is λ·w + (1-λ)·partner and the labels
    λ·y + (1-λ)·y_partner (one-hot of `num_classes`, or already soft). mode:
    "plain" mixes the weights as they are; "permuted" applies a random group element
    to the partner first; "aligned" permutes the partner to match the sample by weight
    matching (`weightspace.align`), so that units that do the same job are averaged.
    """

    spec: WeightSpec
    num_classes: int
    alpha: float = 0.2
    mode: Literal["plain", "permuted", "aligned"] = "plain"
    max_sweeps: int = 20

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mixup mode {self.mode!r}: expected one of {MODES}")

    def partners(self, sd: StateDict, generator: torch.Generator | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Partner indices and the partner batch, prepared according to `mode`."""
        (n,) = batch_shape(self.spec, sd) or (None,)
        if n is None:
            key = next(iter(sd))
            raise ShapeMismatchError(key, ("B", *self.spec.entry(key).shape), tuple(sd[key].shape),
                                     where="mixup needs a batch")
        index = torch.randperm(n, generator=generator)
        partner = {k: t[index.to(t.device)] for k, t in sd.items()}
        if self.mode == "permuted":
            g = self.spec.random_element(generator, batch_shape=(n,))
            partner = self.spec.apply(partner, g, batch_dims=1, strict=False)
        elif self.mode == "aligned":
            from ..align import weight_matching

            g = weight_matching(self.spec, sd, partner, batch_dims=1, max_sweeps=self.max_sweeps,
                                generator=generator, dtype=torch.float64).element
            partner = self.spec.apply(partner, g, batch_dims=1, strict=False)
        return index, partner

    def __call__(self, x, labels: torch.Tensor, generator: torch.Generator | None = None):
        """(mixed batch, soft labels of shape (B, num_classes)) of a stacked state dict or a
        one-channel `WeightSpaceBatch` (returned as the same kind)."""
        mixed, soft = self.mix(as_stacked(x), labels, generator)
        return like(x, mixed), soft

    def mix(self, sd: StateDict, labels: torch.Tensor, generator: torch.Generator | None = None):
        """`__call__` on a stacked state dict (B, *shape)."""
        index, partner = self.partners(sd, generator)
        n = index.numel()
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        lam = torch.from_numpy(np.random.default_rng(seed).beta(self.alpha, self.alpha, size=n))
        soft = labels if labels.dim() == 2 else torch.nn.functional.one_hot(labels.long(), self.num_classes)
        soft = soft.to(torch.get_default_dtype())
        lam_y = lam.to(soft.dtype)[:, None]
        mixed_labels = lam_y * soft + (1 - lam_y) * soft[index.to(soft.device)]
        mixed = {}
        for key, t in sd.items():
            w = lam.to(t.device, t.dtype).reshape(-1, *([1] * (t.dim() - 1)))
            mixed[key] = w * t + (1 - w) * partner[key]
        return mixed, mixed_labels
