"""The diffusion noise schedule (DDPM) and its deterministic sampler (DDIM).

Ho et al. (DDPM, 2020) train on x_t = sqrt(ᾱ_t)·x_0 + sqrt(1 − ᾱ_t)·ε for t drawn
uniformly from 0..T−1; ᾱ follows the cosine schedule of Nichol & Dhariwal (2021).
Song et al. (DDIM, 2021) sample deterministically (η = 0) on any sub-sequence of the
T steps: from the predicted clean x̂_0 and the implied ε̂, step to the next ᾱ.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import ConfigError


def cosine_alpha_bar(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """(T,) ᾱ_t of the cosine schedule, t = 0..T−1, in (0, 1), decreasing (float64)."""
    t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """x_t for a batch: `alpha_bar` (B,) broadcast over the trailing dims of x0 (B, ...)."""
    a = alpha_bar.reshape(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def ddim_timesteps(timesteps: int, steps: int) -> list[int]:
    """`steps` timesteps from T−1 down to 0, evenly spaced (the DDIM sub-sequence)."""
    if not 1 <= steps <= timesteps:
        raise ConfigError(f"steps must be in 1..{timesteps} (the model's timesteps), got {steps}")
    grid = torch.linspace(timesteps - 1, 0, steps).round().long().tolist()
    return list(dict.fromkeys(grid))


def ddim_sample(
    predict_x0: Callable[[dict[str, torch.Tensor], torch.Tensor], dict[str, torch.Tensor]],
    noise: dict[str, torch.Tensor],
    alpha_bar: torch.Tensor,
    steps: int,
) -> dict[str, torch.Tensor]:
    """Deterministic DDIM (η = 0) from pure noise `noise` (`key -> (B, ...)`) to x̂_0.

    `predict_x0(x_t, t)` returns the clean estimate for integer timesteps t (B,).
    """
    ts = ddim_timesteps(len(alpha_bar), steps)
    x = dict(noise)
    batch = next(iter(x.values())).shape[0]
    for n, t in enumerate(ts):
        tt = torch.full((batch,), t, dtype=torch.long, device=next(iter(x.values())).device)
        x0 = predict_x0(x, tt)
        if n + 1 < len(ts):
            a, a_next = float(alpha_bar[t]), float(alpha_bar[ts[n + 1]])
            x = {
                k: math.sqrt(a_next) * x0[k] + math.sqrt(1 - a_next) * (x[k] - math.sqrt(a) * x0[k]) / math.sqrt(1 - a)
                for k in x
            }
    return x0
