"""Weight matching for a batch of pairs at once (aligned mixup, zoo-wide alignment).

The same coordinate descent as `weight_matching`, but the similarity matrices of all
B pairs are built with one batched contraction per group member; only the linear
assignments run per pair (scipy has no batched solver). B' is kept aligned: each
update solves for a permutation q relative to the current B' and composes it in.
"""
from __future__ import annotations

from typing import Mapping

import torch

from ..spec import GroupElement, WeightSpec
from .lap import best_permutation
from .pair import float_keys


def _slots(spec: WeightSpec, keys: list[str]) -> dict[str, list[tuple[str, int]]]:
    """Per group, (key, dim of the key's factored view, counting the batch dim)."""
    out: dict[str, list[tuple[str, int]]] = {name: [] for name in spec.groups}
    for key in keys:
        dim = 1
        for axis in spec.entries[key].axes:
            for f in axis:
                if f.group is not None:
                    out[f.group].append((key, dim))
                dim += 1
    return out


def _take(t: torch.Tensor, dim: int, q: torch.Tensor) -> torch.Tensor:
    """t[b, ..., q[b, i], ...] along `dim` (q of shape (B, n))."""
    shape = [1] * t.dim()
    shape[0], shape[dim] = q.shape
    return torch.gather(t, dim, q.reshape(shape).expand(*t.shape[:dim], q.shape[1], *t.shape[dim + 1:]))


def align_batch(
    spec: WeightSpec,
    sd_a: Mapping[str, torch.Tensor],
    sd_b: Mapping[str, torch.Tensor],
    *,
    max_sweeps: int = 50,
    include_buffers: bool = False,
    generator: torch.Generator | None = None,
) -> GroupElement:
    """For batches A, B (tensors (N, *entry shape)) the batched element g with
    `spec.apply(sd_b, g, batch_dims=1)[k][i]` aligned to A[k][i] by weight matching."""
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    keys = float_keys(spec, {k: v[0] for k, v in sd_a.items()}, include_buffers)
    n = next(iter(sd_a.values())).shape[0]
    a = {k: sd_a[k].reshape(n, *spec.entries[k].factored_shape).double() for k in keys}
    b = {k: sd_b[k].reshape(n, *spec.entries[k].factored_shape).double() for k in keys}
    slots = _slots(spec, keys)
    perms = {name: torch.arange(g.size).expand(n, g.size).clone() for name, g in spec.groups.items()}
    names = [name for name in spec.groups if slots[name]]
    for _ in range(max_sweeps):
        improved = False
        for i in torch.randperm(len(names), generator=gen).tolist():
            name = names[i]
            size = spec.groups[name].size
            score = torch.zeros(n, size, size, dtype=torch.float64)
            for key, dim in slots[name]:
                ta = a[key].movedim(dim, -1).reshape(n, -1, size)
                tb = b[key].movedim(dim, -1).reshape(n, -1, size)
                score += ta.transpose(1, 2) @ tb
            q = torch.stack([best_permutation(s) for s in score])
            gain = score.gather(2, q.unsqueeze(2)).sum((1, 2)) - score.diagonal(dim1=1, dim2=2).sum(1)
            if bool((gain > 1e-12 * score.abs().amax((1, 2)).clamp_min(1.0)).any()):
                improved = True
            for key, dim in slots[name]:
                b[key] = _take(b[key], dim, q)
            perms[name] = torch.gather(perms[name], 1, q)
        if not improved:
            break
    return GroupElement(perms)
