"""Safe checkpoint input/output: `load` any common layout, `save` safetensors atomically.

Pickles are only ever read with `torch.load(weights_only=True)`; a file that would
run code is refused with UnsafePickleError, naming what it asked for.
"""
from __future__ import annotations

from typing import Mapping

import torch

from ..spec import WeightSpec
from .load import load, load_spec
from .save import save


def check_against_spec(state_dict: Mapping[str, torch.Tensor], spec: WeightSpec, where: str) -> None:
    """Raise KeyMismatchError/ShapeMismatchError naming `where` if `state_dict` does not fit `spec`."""
    spec.check(state_dict, where=where)


__all__ = ["check_against_spec", "load", "load_spec", "save"]
