"""Fourier features of single weights: [x, sin(f·x), cos(f·x)] for each frequency f.

An elementwise map commutes with every permutation of every axis, so putting it in
front of an equivariant network keeps the network's symmetry; it lets linear
equivariant layers and pooling see nonlinear functions of individual weights
(Tancik et al., *Fourier Features Let Networks Learn High Frequency Functions*).
On the digits INR zoo it lifts an NFN-HNP classifier from 28% to 68% test
accuracy at the same budget (tasks/inr_classify).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .batch import as_features

DEFAULT_FREQUENCIES = (0.5, 1.0, 2.0, 4.0)


class FourierFeatures(nn.Module):
    """`key -> (B, C, *shape)` to `key -> (B, C·(1 + 2F), *shape)`; frequencies learnable if asked."""

    def __init__(self, frequencies: Sequence[float] = DEFAULT_FREQUENCIES, learnable: bool = False):
        super().__init__()
        f = torch.tensor([float(v) for v in frequencies])
        if learnable:
            self.frequencies = nn.Parameter(f)
        else:
            self.register_buffer("frequencies", f, persistent=False)

    def channels(self, in_channels: int = 1) -> int:
        """Output channels for `in_channels` input channels."""
        return in_channels * (1 + 2 * self.frequencies.numel())

    def encode(self, t: torch.Tensor) -> torch.Tensor:
        b, c = t.shape[:2]
        f = self.frequencies.to(t.dtype).view(1, 1, -1, *([1] * (t.dim() - 2)))
        z = t.unsqueeze(2) * f
        return torch.cat([t.unsqueeze(2), torch.sin(z), torch.cos(z)], 2).reshape(b, -1, *t.shape[2:])

    def forward(self, x) -> dict[str, torch.Tensor]:
        return {k: self.encode(t) for k, t in as_features(x).items()}
