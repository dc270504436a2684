"""The group action on tensors: permute factored axes, multiply extra symmetries.

This is the one implementation every part of weightspace calls (augmentation,
alignment, tests, layers); nothing else re-implements it.
"""
from __future__ import annotations

import torch

from ..errors import ShapeMismatchError, SpecError
from .element import GroupElement
from .parts import Entry, Group


def _take(t: torch.Tensor, dim: int, perm: torch.Tensor, batch_dims: int) -> torch.Tensor:
    """Index `t` along `dim` by `perm` (shape (n,) or (*batch, n))."""
    if perm.dim() == 1:
        if dim < 2 or t.numel() == 0:
            return torch.index_select(t, dim, perm.to(t.device))
        # index_select along a later dim is many times slower than along dim 1: fold the leading dims
        flat = torch.index_select(t.reshape(-1, *t.shape[dim:]), 1, perm.to(t.device))
        return flat.reshape(*t.shape[:dim], *flat.shape[1:])
    if perm.dim() - 1 != batch_dims:
        raise SpecError(
            f"a batched permutation of shape {tuple(perm.shape)} needs {perm.dim() - 1} leading "
            f"batch dims on the tensors, got batch_dims={batch_dims}"
        )
    shape = [1] * t.dim()
    shape[:batch_dims] = perm.shape[:-1]
    shape[dim] = perm.shape[-1]
    index = perm.to(t.device).reshape(shape).expand(*t.shape[:dim], perm.shape[-1], *t.shape[dim + 1 :])
    return torch.gather(t, dim, index)


def _scale(t: torch.Tensor, dim: int, mult: torch.Tensor, power: int, batch_dims: int) -> torch.Tensor:
    """Multiply `t` along `dim` by mult**power (mult of shape (n,) or (*batch, n))."""
    m = mult.to(device=t.device, dtype=t.dtype) if t.is_floating_point() else mult
    if power < 0:
        m = 1.0 / m
    shape = [1] * t.dim()
    if m.dim() > 1:
        shape[:batch_dims] = m.shape[:-1]
    shape[dim] = m.shape[-1]
    return t * m.reshape(shape)


def apply_entry(
    entry: Entry,
    tensor: torch.Tensor,
    g: GroupElement,
    groups: dict[str, Group],
    batch_dims: int = 0,
    multipliers: dict[str, torch.Tensor] | None = None,
    extra_for_key: str | None = None,
) -> torch.Tensor:
    """Apply `g` to one tensor described by `entry`; returns a new tensor.

    `multipliers` are the per-group sign/scale factors already restricted to the
    symmetries each group records (see `WeightSpec.apply`).
    """
    expected = tuple(entry.shape)
    got = tuple(tensor.shape[batch_dims:])
    if got != expected:
        raise ShapeMismatchError(entry.key, expected, got, where="apply")
    lead = tuple(tensor.shape[:batch_dims])
    out = tensor
    moves = [(batch_dims + d, g.perms[f.group]) for d, f in enumerate(entry.factors) if f.group in g.perms]
    if moves:
        split = entry.factored_shape != expected
        out = out.reshape(*lead, *entry.factored_shape) if split else out
        for dim, p in moves:
            out = _take(out, dim, p, batch_dims)
        out = out.reshape(*lead, *entry.shape) if split else out
    key = extra_for_key or entry.key
    for name, mult in (multipliers or {}).items():
        group = groups.get(name)
        if group is None:
            continue
        for act in group.extra_action:
            if act.key != key:
                continue
            factors = entry.axes[act.axis]
            view = out.reshape(*lead, *entry.factored_shape)
            dim = batch_dims + sum(len(a) for a in entry.axes[: act.axis])
            for f in factors:
                if f.group == name:
                    view = _scale(view, dim, mult, act.power, batch_dims)
                dim += 1
            out = view.reshape(*lead, *entry.shape)
    return out if out is not tensor else tensor.clone()
