"""`PairNormalizer`: per-tensor statistics of the training pairs, so every entry enters at unit scale.

The diffusion runs on the update Δ = target − start. For every entry of the spec we
keep one scalar mean and one scalar std of Δ and of the start checkpoint (over all
pairs and all positions of the tensor). A scalar per tensor commutes with every
permutation of the tensor's axes, so normalizing keeps the denoiser equivariant;
statistics per position would not (a permuted axis would carry another neuron's
statistics). The mean shift does not commute with sign flips; the extra
symmetries (sign, scale) are not modelled by either denoiser. The metrics get one
mean and std over start and target metrics together, so equal metrics embed equally.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ..errors import ConfigError
from ..spec import WeightSpec
from .pairs import CheckpointPairs

_CHUNK = 4096
_EPS = 1e-8


class PairNormalizer(nn.Module):
    """Fitted statistics: `stats` (E, 4) = (Δ mean, Δ std, start mean, start std) per entry,
    `metric` (2,) = (mean, std), `init_metric` (1,) = mean start metric of pairs starting
    at an init (the default start metric of `generate`), `fitted` (a flag)."""

    def __init__(self, spec: WeightSpec):
        super().__init__()
        self.keys = list(spec.entries)
        stats = torch.zeros(len(self.keys), 4)
        stats[:, 1] = stats[:, 3] = 1.0
        self.register_buffer("stats", stats)
        self.register_buffer("metric", torch.tensor([0.0, 1.0]))
        self.register_buffer("init_metric", torch.zeros(1))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, pairs: CheckpointPairs) -> None:
        """Accumulate the statistics over `pairs` (in chunks, in float64)."""
        if len(pairs) == 0:
            raise ConfigError("fit_normalizer: no pairs to fit on")
        missing = [k for k in self.keys if k not in pairs.start]
        if missing:
            raise ConfigError(f"fit_normalizer: the pairs lack the spec's entries {missing[:4]}")
        sums = torch.zeros(len(self.keys), 4, dtype=torch.float64)
        count = torch.zeros(len(self.keys), dtype=torch.float64)
        for lo in range(0, len(pairs), _CHUNK):
            part = pairs[lo : lo + _CHUNK]
            for i, k in enumerate(self.keys):
                s, t = part.start[k].double(), part.target[k].double()
                d = t - s
                sums[i] += torch.stack([d.sum(), (d * d).sum(), s.sum(), (s * s).sum()]).cpu()
                count[i] += d.numel()
        mean_d, mean_s = sums[:, 0] / count, sums[:, 2] / count
        std_d = (sums[:, 1] / count - mean_d**2).clamp_min(0).sqrt().clamp_min(_EPS)
        std_s = (sums[:, 3] / count - mean_s**2).clamp_min(0).sqrt().clamp_min(_EPS)
        self.stats.copy_(torch.stack([mean_d, std_d, mean_s, std_s], dim=1))
        m = torch.cat([pairs.start_metric, pairs.target_metric]).double()
        self.metric.copy_(torch.stack([m.mean(), m.std(unbiased=False).clamp_min(_EPS)]))
        at_init = pairs.start_metric if pairs.start_step is None else pairs.start_metric[pairs.start_step == 0]
        self.init_metric.fill_(float((at_init if at_init.numel() else pairs.start_metric).double().mean()))
        self.fitted.fill_(True)

    def _scaled(self, x: Mapping[str, torch.Tensor], col: int, inverse: bool) -> dict[str, torch.Tensor]:
        out = {}
        for i, k in enumerate(self.keys):
            mean, std = self.stats[i, col].to(x[k].dtype), self.stats[i, col + 1].to(x[k].dtype)
            out[k] = x[k] * std + mean if inverse else (x[k] - mean) / std
        return out

    def update(self, delta: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self._scaled(delta, 0, inverse=False)

    def update_inverse(self, z: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self._scaled(z, 0, inverse=True)

    def start(self, start: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self._scaled(start, 2, inverse=False)

    def metric_of(self, m: torch.Tensor) -> torch.Tensor:
        return (m - self.metric[0].to(m.dtype)) / self.metric[1].to(m.dtype)
