"""`ScalarEmbedding`: a scalar (diffusion time, a loss) as a vector, sinusoidal then an MLP.

The sinusoidal features of Vaswani et al. / DDPM (frequencies geometric up to a
period of 10,000), taken of the scalar times `scale`, plus the scalar itself, then
Linear–SiLU–Linear (as DiT and G.pt embed time and metrics).
"""
from __future__ import annotations

import math

import torch
from torch import nn


class ScalarEmbedding(nn.Module):
    """Embed (B,) scalars as (B, out_features).

    Args:
        out_features: the embedding width.
        scale: the scalar is multiplied by this before the sinusoids (1000 for times
            in [0, 1]; 100 for standardized metrics).
        frequencies: sinusoid pairs (the features are 2·frequencies + 1 wide).
    """

    def __init__(self, out_features: int, scale: float, frequencies: int = 32):
        super().__init__()
        self.scale, self.frequencies = scale, frequencies
        self.register_buffer(
            "freqs", torch.exp(-math.log(10000.0) * torch.arange(frequencies, dtype=torch.float32) / frequencies)
        )
        self.mlp = nn.Sequential(nn.Linear(2 * frequencies + 1, out_features), nn.SiLU(), nn.Linear(out_features, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arg = (x * self.scale).unsqueeze(-1) * self.freqs.to(x.dtype)
        return self.mlp(torch.cat([arg.cos(), arg.sin(), x.unsqueeze(-1)], dim=-1))

    def __repr__(self) -> str:
        return f"ScalarEmbedding(scale={self.scale:g}, {self.frequencies} frequencies -> {self.mlp[-1].out_features})"
