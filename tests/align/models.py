"""Catalog models parsed once per test session."""
from __future__ import annotations

import warnings
from functools import lru_cache

import pytest
import torch

from tests.parser.architectures import by_name


@lru_cache(maxsize=None)
def parsed_model(name: str):
    """(model, example_inputs, ParsedModel) of a catalog architecture (HF ones skip without transformers)."""
    import weightspace as ws

    arch = by_name(name)
    if arch.hf:
        pytest.importorskip("transformers")
    model, inputs = arch.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = ws.parse_model(model, inputs)
    return model, inputs, result


def parsed(name: str):
    """(model, example_inputs, spec) of a catalog architecture, from the one cached parse."""
    model, inputs, result = parsed_model(name)
    return model, inputs, result.spec


def state(model) -> dict[str, torch.Tensor]:
    """The model's state dict as detached clones (never shared with the module; ties kept)."""
    clones: dict[int, torch.Tensor] = {}
    return {k: clones.setdefault(id(v), v.detach().clone()) for k, v in model.state_dict(keep_vars=True).items()}


def noisy(sd: dict[str, torch.Tensor], scale: float, seed: int) -> dict[str, torch.Tensor]:
    """sd plus Gaussian noise of `scale`× each tensor's std on floating entries (equal tensors stay equal)."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        twin = next((j for j in out if sd[j].shape == v.shape and torch.equal(sd[j], v)), None)
        if twin is not None and v.numel() > 1:
            out[k] = out[twin]
        elif v.is_floating_point() and v.numel() > 1:
            out[k] = v + scale * v.std() * torch.randn(v.shape, generator=gen)
        else:
            out[k] = v.clone()
    return out


def snapshot(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in sd.items()}


def unchanged(sd: dict[str, torch.Tensor], copy: dict[str, torch.Tensor]) -> bool:
    return set(sd) == set(copy) and all(torch.equal(sd[k], copy[k]) for k in sd)
