"""Fourier features of weights: x -> [x, sin(a·x·Bᵀ), cos(a·x·Bᵀ)] for a frequency matrix B.

Tancik et al., *Fourier Features Let Networks Learn High Frequency Functions* (2020).
One encoder, two parametrizations:

- octaves (the constructor): fixed frequencies f (default 0.5, 1, 2, 4) applied to each
  weight alone (B = f as a column, a = 1). An elementwise map commutes with every
  permutation of every axis, so in front of an equivariant network it keeps the
  network's symmetry and lets linear equivariant layers and pooling see nonlinear
  functions of individual weights. On the digits INR zoo it lifts an NFN-HNP
  classifier from 28% to 68% test accuracy at the same budget (tasks/inr_classify).
- Gaussian (`FourierFeatures.gaussian`): B ~ N(0, scale²) of shape (num_freqs, width)
  drawn from a seed, a = 2π, over the `width` values one edge of a parameter graph
  carries (a 3x3 kernel: 9), as in Graph Metanetworks (Lim et al., ICLR 2024) and neural
  graphs (Kofinas et al., ICLR 2024); used by the GMN `EdgeEncoder`.

Frequencies given by the caller are settings, not state (absent from the state dict);
drawn ones are saved with the model.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .batch import as_features

DEFAULT_FREQUENCIES = (0.5, 1.0, 2.0, 4.0)


class FourierFeatures(nn.Module):
    """[x, sin(a·x·Bᵀ), cos(a·x·Bᵀ)] with B (num_freqs, width); learnable frequencies if asked.

    Shapes: a tensor (..., width) -> (..., width + 2·num_freqs); with width 1 also a
    metanetwork input `key -> (B, C, *shape)` (dict or `WeightSpaceBatch`) ->
    `key -> (B, C·(1 + 2·num_freqs), *shape)`, each weight encoded alone.
    """

    def __init__(self, frequencies: Sequence[float] = DEFAULT_FREQUENCIES, learnable: bool = False):
        super().__init__()
        f = torch.tensor([float(v) for v in frequencies])[:, None]
        if f.numel() == 0:
            raise ConfigError("FourierFeatures needs at least one frequency")
        if learnable:
            self.freqs = nn.Parameter(f)
        else:
            self.register_buffer("freqs", f, persistent=False)
        self.angular = 1.0

    @classmethod
    def gaussian(cls, width: int, num_freqs: int = 16, scale: float = 2.0, seed: int = 0) -> "FourierFeatures":
        """Random Fourier features of `width` values: B ~ N(0, scale²) from `seed`, a = 2π."""
        if width < 1 or num_freqs < 1:
            raise ConfigError(f"FourierFeatures.gaussian needs width >= 1 and num_freqs >= 1, got {width}, {num_freqs}")
        gen = torch.Generator().manual_seed(seed * 1_000_003 + width)
        enc = cls((1.0,))
        del enc.freqs
        enc.register_buffer("freqs", torch.randn(num_freqs, width, generator=gen) * scale)
        enc.angular = 2 * math.pi
        return enc

    @property
    def width(self) -> int:
        return int(self.freqs.shape[1])

    @property
    def out_features(self) -> int:
        return self.width + 2 * int(self.freqs.shape[0])

    def channels(self, in_channels: int = 1) -> int:
        """Output channels of the elementwise (width 1) encoding of `in_channels` channels."""
        return in_channels * self.out_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(..., width) -> (..., width + 2·num_freqs)."""
        angles = (self.angular * x) @ self.freqs.to(x.dtype).T
        return torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=-1)

    def forward(self, x):
        if isinstance(x, torch.Tensor):
            return self.features(x)
        if self.width != 1:
            raise ConfigError(f"FourierFeatures of width {self.width} read (..., {self.width}) tensors, not weight dicts")
        out = {}
        for k, t in as_features(x).items():
            z = self.features(t.unsqueeze(-1)).movedim(-1, 2)
            out[k] = z.reshape(t.shape[0], -1, *t.shape[2:])
        return out

    def extra_repr(self) -> str:
        return f"width={self.width}, num_freqs={self.freqs.shape[0]}"
