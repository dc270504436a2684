"""Weight-space features for quick baselines: flattened weights, per-tensor statistics,
and, for INRs, probe values and reconstructions.

Statistics follow Unterthiner et al. (2020), "Predicting Neural Network Accuracy from
Weights": per tensor, the mean, variance and the 0/25/50/75/100% quantiles.
"""
from __future__ import annotations

import torch

from . import siren
from .siren import SirenConfig

PROBE_SEED = 0
QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


def flattened(weights: dict[str, torch.Tensor], keys: list[str]) -> torch.Tensor:
    """(N, P) concatenation of every tensor in `keys` order."""
    return torch.cat([weights[k].reshape(weights[k].shape[0], -1).float() for k in keys], dim=1)


def statistics(weights: dict[str, torch.Tensor], keys: list[str]) -> torch.Tensor:
    """(N, 7 × tensors): mean, variance and quantiles of each tensor of each network."""
    cols = []
    q = torch.tensor(QUANTILES)
    for k in keys:
        flat = weights[k].reshape(weights[k].shape[0], -1).float()
        cols += [flat.mean(1, keepdim=True), flat.var(1, keepdim=True, unbiased=False), torch.quantile(flat, q, dim=1).T]
    return torch.cat(cols, dim=1)


def probe_coords(dim: int, count: int = 64) -> torch.Tensor:
    """`count` fixed coordinates in [-1, 1]^dim (seeded, the same for every zoo)."""
    return torch.rand(count, dim, generator=torch.Generator().manual_seed(PROBE_SEED)) * 2 - 1


@torch.no_grad()
def evaluate(cfg: SirenConfig, weights: dict[str, torch.Tensor], coords: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """(N, P) INR outputs at `coords`, in chunks of networks to bound memory."""
    n = weights[cfg.keys[0]].shape[0]
    outs = [
        siren.forward(cfg, {k: v[s : s + chunk] for k, v in weights.items()}, coords)[..., 0]
        for s in range(0, n, chunk)
    ]
    return torch.cat(outs)
