"""BatchNorm statistics reset: recompute running mean/var of a merged model on data.

Interpolated BatchNorm statistics are not the statistics of the interpolated
network (Jordan et al., *REPAIR*, 2022; Ainsworth et al., 2023, App. A.4), so a
merged BN network must re-estimate them before evaluation.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch
from torch import nn

from .data import input_batches
from ..errors import AlignError
from .modules import with_weights


def _norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def has_batchnorm(model: nn.Module) -> bool:
    return bool(_norms(model))


@torch.no_grad()
def reset_batchnorm(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], batches: Iterable[Any], max_batches: int | None = None
) -> dict[str, torch.Tensor]:
    """A new state dict: `state_dict` with every BatchNorm's running statistics recomputed.

    The statistics are exact averages over the given batches (cumulative moving
    average), measured with BatchNorm in train mode and every other module in eval
    mode (no dropout). `model` is a template; it is copied, never modified.
    """
    net = with_weights(model, state_dict).eval()
    norms = _norms(net)
    if not norms:
        return {k: v.detach().clone() for k, v in state_dict.items()}
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    seen = 0
    for args in input_batches(batches, max_batches):
        net(*args)
        seen += 1
    if seen == 0:
        raise AlignError("BatchNorm reset needs at least one batch of data")
    sd = net.state_dict()
    return {k: sd[k].detach().clone() for k in state_dict}

