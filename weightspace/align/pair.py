"""Checks shared by every alignment entry point: same keys, same shapes, fits the spec."""
from __future__ import annotations

from typing import Mapping

import torch

from ..spec import WeightSpec
from ..errors import ArchitectureMismatchError


def check_pair(
    sd_a: Mapping[str, torch.Tensor],
    sd_b: Mapping[str, torch.Tensor],
    spec: WeightSpec | None = None,
    batch_dims: int = 0,
) -> None:
    """Raise ArchitectureMismatchError naming the first key where A and B differ.

    Keys are compared in A's order (then B's extra keys), shapes key by key; with a
    spec, A must also have the spec's keys and shapes (KeyMismatchError /
    ShapeMismatchError otherwise), after `batch_dims` leading batch dims.
    """
    for key, ta in sd_a.items():
        tb = sd_b.get(key)
        if tb is None:
            raise ArchitectureMismatchError(key, "present in A, missing from B")
        if tuple(ta.shape) != tuple(tb.shape):
            raise ArchitectureMismatchError(key, f"shape {tuple(ta.shape)} in A, {tuple(tb.shape)} in B")
    for key in sd_b:
        if key not in sd_a:
            raise ArchitectureMismatchError(key, "present in B, missing from A")
    if spec is not None:
        spec.check(sd_a, batch_dims, where="model A")


def float_keys(spec: WeightSpec, sd: Mapping[str, torch.Tensor], include_buffers: bool) -> list[str]:
    """Canonical (non-alias) floating-point entries that take part in a matching objective."""
    return [
        k
        for k, e in spec.entries.items()
        if k in sd and sd[k].is_floating_point() and sd[k].numel() > 0 and (include_buffers or not e.buffer)
    ]
