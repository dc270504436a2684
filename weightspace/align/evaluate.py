"""Loss and accuracy of one model template under many state dicts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .data import split_batch
from ..errors import AlignError
from .modules import load_into, with_weights

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Score:
    """Mean loss over the data, and accuracy (None when outputs are not class logits)."""

    loss: float
    accuracy: float | None


class Evaluator:
    """Evaluates weights on fixed labelled batches with one private copy of `model`.

    Args:
        model: template module (copied once, never modified).
        batches: (inputs, targets) batches; materialized once.
        loss_fn: mean loss of (outputs, targets); default cross-entropy.
    """

    def __init__(self, model: nn.Module, batches: Iterable[Any], loss_fn: LossFn = F.cross_entropy):
        self.net = with_weights(model, model.state_dict()).eval()
        self.batches = [split_batch(b) for b in batches]
        if not self.batches:
            raise AlignError("evaluation needs at least one batch")
        if any(t is None for _, t in self.batches):
            raise AlignError("evaluation needs (inputs, targets) batches")
        self.loss_fn = loss_fn

    @torch.no_grad()
    def __call__(self, state_dict: Mapping[str, torch.Tensor]) -> Score:
        load_into(self.net, state_dict)
        self.net.eval()
        total, correct, count, classify = 0.0, 0, 0, True
        for args, target in self.batches:
            out = self.net(*args)
            n = target.shape[0]
            total += float(self.loss_fn(out, target)) * n
            count += n
            if out.dim() >= 2 and not target.is_floating_point() and out.shape[:1] == target.shape[:1]:
                correct += int((out.argmax(-1) == target).sum())
            else:
                classify = False
        return Score(total / count, correct / count if classify else None)
