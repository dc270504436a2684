"""Running moments of several models' units on the same data: the statistics feature matching reads.

Activation matching correlates two models' units; ZipIt! correlates the units of
several models with each other and within each model; CCA needs their covariances.
`Moments` accumulates, per model, sums and squared sums of the units, and the cross
products of the requested model pairs, in float64.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch


@dataclass
class Moments:
    """Sums over samples of K models' units (samples × units each) and of the chosen pairs' cross products.

    pairs: the (i, j) model pairs, i <= j, whose cross products are kept (all of them by default).
    """

    models: int = 2
    pairs: tuple[tuple[int, int], ...] | None = None
    n: int = 0
    sums: list[torch.Tensor] = field(default_factory=list)
    squares: list[torch.Tensor] = field(default_factory=list)
    cross: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)

    def __post_init__(self):
        if self.pairs is None:
            self.pairs = tuple((i, j) for i in range(self.models) for j in range(i, self.models))

    def add(self, xs: Sequence[torch.Tensor]) -> None:
        """One batch: `xs[k]` is model k's (samples, units) values."""
        xs = [x.double() for x in xs]
        sums = [x.sum(0) for x in xs]
        squares = [(x * x).sum(0) for x in xs]
        cross = {(i, j): xs[i].T @ xs[j] for i, j in self.pairs}
        if not self.sums:
            self.sums, self.squares, self.cross = sums, squares, cross
        else:
            self.sums = [a + b for a, b in zip(self.sums, sums)]
            self.squares = [a + b for a, b in zip(self.squares, squares)]
            self.cross = {p: self.cross[p] + cross[p] for p in self.pairs}
        self.n += xs[0].shape[0]

    def _means(self) -> list[torch.Tensor]:
        n = max(self.n, 1)
        return [s / n for s in self.sums]

    def variances(self) -> list[torch.Tensor]:
        n = max(self.n, 1)
        return [(q / n - m**2).clamp_min(0) for q, m in zip(self.squares, self._means())]

    def covariance(self, i: int, j: int) -> torch.Tensor:
        """Covariance of model i's units (rows) with model j's (columns); (i, j) or (j, i) must be kept."""
        n = max(self.n, 1)
        means = self._means()
        ab = self.cross[(i, j)] if (i, j) in self.cross else self.cross[(j, i)].T
        return ab / n - torch.outer(means[i], means[j])

    def correlation(self, i: int = 0, j: int = 1) -> torch.Tensor:
        """Pearson correlation of model i's units with model j's, variances floored relative to their mean."""
        va = self.variances()
        eps = 1e-6 * float(torch.cat(va).mean()) + 1e-12
        return self.covariance(i, j) / torch.sqrt(torch.outer(va[i] + eps, va[j] + eps))

    def stacked_correlation(self) -> torch.Tensor:
        """The (K·units × K·units) correlation of all models' units, model 0's first."""
        k = self.models
        return torch.cat([torch.cat([self.correlation(i, j) for j in range(k)], 1) for i in range(k)], 0)
