"""Apply a merge method to whole state dicts, entry by entry, in memory."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from ..errors import KeyMismatchError, ShapeMismatchError
from ..spec import WeightSpec
from .methods import method

StateDict = Mapping[str, torch.Tensor]


def check_models(models: Sequence[StateDict], base: StateDict | None = None, spec: WeightSpec | None = None) -> None:
    """KeyMismatchError / ShapeMismatchError naming the first model (or the base) that does not fit the first."""
    first = models[0]
    others = [(f"model {i}", sd) for i, sd in enumerate(models) if i] + ([("base", base)] if base is not None else [])
    for where, sd in others:
        missing = [k for k in first if k not in sd]
        unexpected = [k for k in sd if k not in first]
        if missing or unexpected:
            raise KeyMismatchError(missing, unexpected, where=f"{where} vs model 0")
        for key, t in first.items():
            if tuple(sd[key].shape) != tuple(t.shape):
                raise ShapeMismatchError(key, t.shape, sd[key].shape, where=f"{where} vs model 0")
    if spec is not None:
        spec.check(first, where="model 0")


def merge_entry(name: str, key: str, tensors: Sequence[torch.Tensor], base: torch.Tensor | None, options: dict):
    """One merged entry: the method's kernel on floating entries; others copied from the anchor (model 0)."""
    if not tensors[0].is_floating_point():
        return tensors[0].detach().clone()
    return method(name).kernel(tensors, base, key, **options)


def combine(
    name: str, models: Sequence[StateDict], base: StateDict | None = None, **options
) -> dict[str, torch.Tensor]:
    """Merge `models` (already in one frame) with method `name`; new tensors, inputs untouched.

    Only floating-point entries are merged; integer buffers (BatchNorm's
    num_batches_tracked, index buffers) are copied from the anchor, model 0. Entries
    tied in every model (one tensor under two keys) stay tied in the result.
    Raises ConfigError for a bad method or option, KeyMismatchError /
    ShapeMismatchError for models that do not fit one another.
    """
    m = method(name)
    m.check(len(models), base is not None, options)
    check_models(models, base)
    out: dict[str, torch.Tensor] = {}
    seen: dict[int, str] = {}
    for key, t in models[0].items():
        tied = seen.get(id(t))
        if tied is not None and all(sd[key] is sd[tied] for sd in models[1:]):
            out[key] = out[tied]
            continue
        seen[id(t)] = key
        out[key] = merge_entry(name, key, [sd[key] for sd in models], None if base is None else base[key], options)
    return out
