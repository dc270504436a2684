"""Running a module for checks: its train/eval mode, its tied entries, output changes.

The parser's verification and `weightspace.align` both run a model on fixed inputs and
compare outputs; this module is the one implementation of those pieces.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

_DROPOUT = (nn.modules.dropout._DropoutNd,)


@contextlib.contextmanager
def mode(model: nn.Module, train: bool, *, dropout: bool = True):
    """Temporarily set train/eval mode on every submodule, restoring each flag after.

    dropout=False holds dropout layers in eval even in train mode, so train mode is
    deterministic where only dropout made it random (BatchNorm still uses batch statistics).
    """
    saved = {m: m.training for m in model.modules()}
    model.train(train)
    if not dropout:
        for m in model.modules():
            if isinstance(m, _DROPOUT):
                m.training = False
    try:
        yield model
    finally:
        for m, flag in saved.items():
            m.training = flag


def _heads(model: nn.Module) -> dict[str, str]:
    """Every state-dict key (in order) -> the first key holding the same tensor."""
    first: dict[int, str] = {}
    return {key: first.setdefault(id(t), key) for key, t in model.state_dict(keep_vars=True).items()}


def tied_groups(model: nn.Module) -> dict[str, list[str]]:
    """State-dict keys of `model` grouped by the tensor they share (first key -> all keys)."""
    groups: dict[str, list[str]] = {}
    for key, head in _heads(model).items():
        groups.setdefault(head, []).append(key)
    return groups


def tied_aliases(model: nn.Module) -> dict[str, str]:
    """State-dict keys that share one tensor with an earlier key: alias -> canonical."""
    return {key: head for key, head in _heads(model).items() if key != head}


def relative_change(ref: list[torch.Tensor], new: list[torch.Tensor]) -> float:
    """max |new - ref| / max |ref| over every output tensor, in float64 (inf on a shape change;
    a non-float output counts 1 where it changed)."""
    worst = 0.0
    for a, b in zip(ref, new):
        if a.shape != b.shape:
            return float("inf")
        if not a.is_floating_point():
            worst = max(worst, float((a != b).any()))
            continue
        scale = a.abs().max().item() if a.numel() else 0.0
        diff = (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
        worst = max(worst, diff / max(scale, 1e-12))
    return worst
