"""Random state dicts that fit a spec, for tests and examples."""
from __future__ import annotations

from typing import Iterable

import torch

from ..spec import WeightSpec


def random_weights(
    spec: WeightSpec,
    generator: torch.Generator | None = None,
    batch_shape: Iterable[int] = (),
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """A standard-normal tensor of shape (*batch_shape, *entry.shape) per spec entry.

    Buffers are included. Counters named `*num_batches_tracked` are long zeros, and
    variances named `*running_var` are made positive so that the weights still
    define a working model. Aliases are left out (they share their target's tensor).
    """
    batch_shape = tuple(batch_shape)
    out: dict[str, torch.Tensor] = {}
    for key, entry in spec.entries.items():
        shape = (*batch_shape, *entry.shape)
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros(shape, dtype=torch.long)
            continue
        t = torch.randn(shape, generator=generator, dtype=dtype)
        out[key] = t.abs() + 0.1 if key.endswith("running_var") else t
    return out
