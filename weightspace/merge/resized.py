"""A copy of a template module holding tensors of other shapes (a partially zipped model is wider)."""
from __future__ import annotations

import copy
from typing import Mapping

import torch
from torch import nn

from ..errors import KeyMismatchError


def resized_module(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """A deep copy of `model` whose parameters and buffers are `state_dict`'s tensors, whatever their shapes.

    Works for layers whose forward reads sizes off their tensors (Linear, Conv, BatchNorm,
    LayerNorm, ...), not for modules that reshape by a stored width. Tied parameters
    stay tied. KeyMismatchError when the keys differ from the model's.
    """
    clone = copy.deepcopy(model)
    own = clone.state_dict(keep_vars=True)
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        raise KeyMismatchError(missing, unexpected, where="resized module")
    made: dict[int, torch.Tensor] = {}
    for key, old in own.items():
        path, _, name = key.rpartition(".")
        owner = clone.get_submodule(path)
        value = state_dict[key].detach().clone()
        if name in owner._parameters:
            new = made.setdefault(id(old), nn.Parameter(value, requires_grad=old.requires_grad))
            owner._parameters[name] = new
        else:
            owner._buffers[name] = made.setdefault(id(old), value)
    return clone
