"""Loss barriers along the linear path between two models (Frankle et al. 2020; Ainsworth et al. 2023).

barrier      = max over α of  L(α) - ((1 - α) L(0) + α L(1))
barrier_mean = max over α of  L(α) - (L(0) + L(1)) / 2       (the form Git Re-Basin reports)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .bn_reset import has_batchnorm, reset_batchnorm
from ..errors import AlignError
from .evaluate import Evaluator, LossFn, Score
from .interpolate import interpolate


def barrier_of(alphas: Sequence[float], losses: Sequence[float]) -> float:
    """max over α of L(α) minus the linear interpolation of the endpoint losses."""
    if len(alphas) != len(losses) or len(alphas) < 2 or alphas[0] != 0 or alphas[-1] != 1:
        raise AlignError("a loss path needs matching alphas and losses, from α=0 to α=1")
    l0, l1 = losses[0], losses[-1]
    return max(l - ((1 - a) * l0 + a * l1) for a, l in zip(alphas, losses))


@dataclass(frozen=True)
class LossPath:
    """Loss (and accuracy) of (1-α)·A + α·B at each α."""

    alphas: tuple[float, ...]
    losses: tuple[float, ...]
    accuracies: tuple[float | None, ...]

    @property
    def barrier(self) -> float:
        return barrier_of(self.alphas, self.losses)

    @property
    def barrier_mean(self) -> float:
        return max(self.losses) - (self.losses[0] + self.losses[-1]) / 2

    def at(self, alpha: float) -> Score:
        i = min(range(len(self.alphas)), key=lambda j: abs(self.alphas[j] - alpha))
        return Score(self.losses[i], self.accuracies[i])


def loss_path(
    evaluate: Callable[[Mapping[str, torch.Tensor]], Score],
    sd_a: Mapping[str, torch.Tensor],
    sd_b: Mapping[str, torch.Tensor],
    alphas: Sequence[float] = tuple(i / 10 for i in range(11)),
    transform: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    progress: Callable[[float, Score], None] | None = None,
) -> LossPath:
    """Evaluate the interpolations of A and B; `transform` adjusts each (e.g. BN reset, REPAIR)."""
    alphas = tuple(float(a) for a in alphas)
    scores = []
    for a in alphas:
        sd = interpolate(sd_a, sd_b, a)
        if transform is not None:
            sd = transform(sd)
        score = evaluate(sd)
        scores.append(score)
        if progress is not None:
            progress(a, score)
    return LossPath(alphas, tuple(s.loss for s in scores), tuple(s.accuracy for s in scores))


def barrier(
    model: nn.Module,
    sd_a: Mapping[str, torch.Tensor],
    sd_b: Mapping[str, torch.Tensor],
    batches: Iterable[Any],
    *,
    alphas: Sequence[float] = tuple(i / 10 for i in range(11)),
    loss_fn: LossFn = F.cross_entropy,
    reset_bn: Iterable[Any] | None = None,
) -> LossPath:
    """The loss path of `model` between A and B on labelled `batches`; read `.barrier` off it.

    Align B first (`spec.apply(sd_b, g)`) for the aligned barrier. With `reset_bn`
    data, BatchNorm statistics of every point (endpoints included) are recomputed on it.
    """
    evaluate = Evaluator(model, batches, loss_fn)
    transform = None
    if reset_bn is not None and has_batchnorm(model):
        data = list(reset_bn)
        transform = lambda sd: reset_batchnorm(model, sd, data)  # noqa: E731
    return loss_path(evaluate, sd_a, sd_b, alphas, transform)
