"""Linear interpolation between two state dicts of one architecture."""
from __future__ import annotations

from typing import Mapping

import torch

from .pair import check_pair


def interpolate(
    sd_a: Mapping[str, torch.Tensor], sd_b: Mapping[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """(1 - alpha)·A + alpha·B for every floating tensor; new tensors, inputs untouched.

    Integer entries (BatchNorm's num_batches_tracked, index buffers) are taken from
    the nearer endpoint. Tied keys stay tied: an alias of an earlier key in A gets
    that key's interpolated tensor.
    """
    check_pair(sd_a, sd_b)
    alpha = float(alpha)
    out: dict[str, torch.Tensor] = {}
    seen: dict[int, str] = {}
    for key, ta in sd_a.items():
        tied = seen.get(id(ta))
        if tied is not None and sd_b[key] is sd_b[tied]:
            out[key] = out[tied]
            continue
        seen[id(ta)] = key
        tb = sd_b[key]
        if ta.is_floating_point():
            out[key] = torch.lerp(ta.detach(), tb.detach().to(ta.dtype), alpha)
        else:
            out[key] = (ta if alpha < 0.5 else tb).detach().clone()
    return out
