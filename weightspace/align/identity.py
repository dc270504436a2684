"""Check that an aligned model computes the same function as the original."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ..parser.runtime import mode, relative_change
from ..parser.trace import tensor_leaves
from .modules import with_weights


@torch.no_grad()
def output_change(
    model: nn.Module, sd: Mapping[str, torch.Tensor], sd_moved: Mapping[str, torch.Tensor], args: tuple, train: bool = False
) -> float:
    """max |f(moved) - f(sd)| / max |f(sd)| over the model's outputs on `args`.

    In train mode both runs start from the same RNG state; BatchNorm uses batch
    statistics, so this checks the buffers-free function too.
    """
    outs = []
    for weights in (sd, sd_moved):
        net = with_weights(model, weights)
        with mode(net, train), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            outs.append(tensor_leaves(net(*args)))
    return relative_change(*outs)
