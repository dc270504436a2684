"""The baselines metanetwork papers compare against.

- `FlatMLP`: an MLP on all weights flattened (ignores the symmetry; Navon et al.,
  Zhou et al. report it as "MLP").
- `StatFeatures` / `StatMLP`: per-tensor statistics — mean, variance and quantiles of
  every entry — then an MLP (Unterthiner et al., *Predicting Neural Network Accuracy
  from Weights*). Invariant to any permutation of each tensor's elements, so it is
  invariant to the spec's group but also blind to how tensors connect.

The "MLP + augmentation" baseline is `FlatMLP` trained on batches passed through
`weightspace.augment.RandomSymmetry`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ..spec import WeightSpec
from .batch import as_features, check_features
from .models import mlp

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


class FlatMLP(nn.Module):
    """MLP on the concatenation of every entry, flattened, in spec order.

    Shapes: input `key -> (B, in_channels, *shape)`; output (B, num_classes).
    """

    def __init__(
        self,
        spec: WeightSpec,
        num_classes: int,
        hidden: Sequence[int] = (256, 256),
        *,
        in_channels: int = 1,
        activation: Callable[[], nn.Module] = nn.ReLU,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.spec, self.in_channels = spec, in_channels
        self.in_features = in_channels * sum(int(torch.Size(e.shape).numel()) for e in spec.entries.values())
        self.net = mlp(self.in_features, hidden, num_classes, activation, dropout)

    def forward(self, x) -> torch.Tensor:
        x = as_features(x)
        check_features(self.spec, x, self.in_channels, "FlatMLP input")
        return self.net(torch.cat([x[k].flatten(1) for k in self.spec.entries], dim=1))

    def __repr__(self) -> str:
        return f"FlatMLP({self.in_features} inputs -> {self.net[-1].out_features})"


class StatFeatures(nn.Module):
    """Mean, variance and `quantiles` of every entry and channel: (B, C·E·(2 + len(quantiles)))."""

    def __init__(self, spec: WeightSpec, in_channels: int = 1, quantiles: Sequence[float] = QUANTILES):
        super().__init__()
        self.spec, self.in_channels = spec, in_channels
        self.register_buffer("q", torch.tensor(list(quantiles)), persistent=False)
        self.out_features = in_channels * len(spec.entries) * (2 + len(quantiles))

    def forward(self, x) -> torch.Tensor:
        x = as_features(x)
        check_features(self.spec, x, self.in_channels, "StatFeatures input")
        feats = []
        for k in self.spec.entries:
            t = x[k].flatten(2)  # (B, C, numel)
            q = torch.quantile(t, self.q.to(t.dtype), dim=-1).movedim(0, -1)  # (B, C, nq)
            mean = t.mean(-1, keepdim=True)
            var = t.var(-1, unbiased=False, keepdim=True)
            feats.append(torch.cat([mean, var, q], dim=-1).flatten(1))
        return torch.cat(feats, dim=1)


class StatMLP(nn.Module):
    """`StatFeatures`, batch-normalized, then an MLP. Shapes: input as `FlatMLP`; output (B, num_classes)."""

    def __init__(
        self,
        spec: WeightSpec,
        num_classes: int,
        hidden: Sequence[int] = (256, 256),
        *,
        in_channels: int = 1,
        quantiles: Sequence[float] = QUANTILES,
        activation: Callable[[], nn.Module] = nn.ReLU,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.features = StatFeatures(spec, in_channels, quantiles)
        self.norm = nn.BatchNorm1d(self.features.out_features)
        self.net = mlp(self.features.out_features, hidden, num_classes, activation, dropout)

    def forward(self, x) -> torch.Tensor:
        return self.net(self.norm(self.features(x)))
