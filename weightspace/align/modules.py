"""A private copy of a template module carrying given weights (the caller's module is never touched)."""
from __future__ import annotations

import copy
from typing import Mapping

import torch
from torch import nn

from ..errors import AlignError
from ..parser.runtime import tied_groups


def complete(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`sd` with every tied key of `model` set to the tensor of the first key of its tie that `sd` has.

    The first key in the model's state-dict order wins, so a tied pair holding two
    different values (e.g. after separate edits) loads deterministically.
    """
    out = dict(sd)
    for keys in tied_groups(model).values():
        have = next((k for k in keys if k in sd), None)
        if have is None:
            raise AlignError(f"the state dict lacks {keys[0]!r}, which the model needs")
        for k in keys:
            out[k] = sd[have]
    return out


def load_into(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> None:
    """Copy `sd` into `model` (a private copy), reporting a key mismatch as AlignError."""
    try:
        model.load_state_dict(complete(model, sd), strict=True)
    except RuntimeError as err:
        raise AlignError(f"the weights do not fit the model: {str(err).splitlines()[0]}") from err


def with_weights(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> nn.Module:
    """A deep copy of `model` holding `sd`."""
    clone = copy.deepcopy(model)
    load_into(clone, sd)
    return clone


def state_of(model: nn.Module, keys) -> dict[str, torch.Tensor]:
    """Detached copies of `model`'s state for `keys`."""
    sd = model.state_dict()
    return {k: sd[k].detach().clone() for k in keys}
