"""Memorization checks of generated checkpoints (Zeng et al., 2026): the distance to the nearest
training checkpoint after alignment, and the two baselines that reuse training checkpoints.

Alignment is two-stage, so that it scales to thousands of training checkpoints: every
checkpoint (training bank and queries) is first brought to one frame, its hidden units
sorted by their squared weight (every tensor slice of the unit, summed: a statistic no
other group's permutation changes, so permuted copies sort to the same point) and then
weight-matched to one reference checkpoint (one batched `weight_matching` call: one
matching per checkpoint, not per pair); the `refine` nearest bank checkpoints of each
query in that frame are then weight-matched to the query pairwise, and the smallest
distance wins (never more than the unaligned one). A permuted copy of a bank checkpoint
lands on the copy in the frame, so it is found at distance 0 (the test checks).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from weightspace.align import weight_matching
from weightspace.spec import GroupElement, WeightSpec

Stack = dict[str, torch.Tensor]  # key -> (N, *entry shape)


def flatten(points: Stack, keys: list[str]) -> torch.Tensor:
    """(N, D): each point's tensors concatenated in `keys` order."""
    return torch.cat([points[k].flatten(1) for k in keys], dim=1)


def unflatten(flat: torch.Tensor, like: Stack, keys: list[str]) -> Stack:
    """The inverse of `flatten`, shapes taken from `like`."""
    out, at = {}, 0
    for k in keys:
        shape = like[k].shape[1:]
        size = int(torch.Size(shape).numel())
        out[k] = flat[:, at : at + size].reshape(-1, *shape)
        at += size
    return out


def sorting_element(spec: WeightSpec, points: Stack) -> GroupElement:
    """Per point, the permutations sorting each group's units by their squared weight (batched element).

    Groups that span no whole axis (a factor of a split axis) are left out (the identity).
    """
    n = next(iter(points.values())).shape[0]
    scores: dict[str, torch.Tensor] = {}
    for key, t in points.items():
        for axis, factors in enumerate(spec.entries[key].axes):
            if len(factors) == 1 and factors[0].group is not None:
                others = [d for d in range(1, t.dim()) if d != axis + 1]
                unit = t.pow(2).sum(others) if others else t.pow(2)
                group = factors[0].group
                scores[group] = scores.get(group, torch.zeros(n, unit.shape[1])) + unit
    return GroupElement({g: torch.argsort(s, dim=1, stable=True) for g, s in scores.items()})


def align_to(spec: WeightSpec, points: Stack, reference: Stack, chunk: int = 4096) -> Stack:
    """Every point sorted, then weight-matched onto the reference (key -> (N, *shape) each), in chunks."""
    n = next(iter(points.values())).shape[0]
    parts = []
    for s in range(0, n, chunk):
        part = {k: v[s : s + chunk] for k, v in points.items()}
        part = spec.apply(part, sorting_element(spec, part), batch_dims=1)
        m = len(next(iter(part.values())))
        ref = {k: reference[k].expand(m, *reference[k].shape[1:]) for k in part}
        element = weight_matching(spec, ref, part, batch_dims=1).element
        parts.append(spec.apply(part, element, batch_dims=1))
    return {k: torch.cat([p[k] for p in parts]) for k in points}


def nearest(queries: torch.Tensor, bank: torch.Tensor, k: int = 1, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest Euclidean distances from each query (Q, D) to the bank (M, D): (Q, k) values, (Q, k) indices."""
    dists, index = [], []
    for s in range(0, len(queries), chunk):
        d = torch.cdist(queries[s : s + chunk].double(), bank.double())
        v, i = d.topk(min(k, bank.shape[0]), dim=1, largest=False)
        dists.append(v)
        index.append(i)
    return torch.cat(dists).float(), torch.cat(index)


@dataclass(frozen=True)
class Nearest:
    """Per query: the distance to the nearest bank checkpoint without alignment and after it, and its index."""

    unaligned: torch.Tensor
    aligned: torch.Tensor
    index: torch.Tensor


@dataclass(frozen=True)
class Bank:
    """Training checkpoints: as stored, and weight-matched to `reference` (key -> (1, *shape))."""

    points: Stack
    aligned: Stack
    reference: Stack
    keys: list[str]

    @classmethod
    def build(cls, spec: WeightSpec, points: Stack, reference: Stack) -> "Bank":
        """The bank of `points`, aligned once to `reference` (`align_to`)."""
        keys = list(points)
        return cls(points, align_to(spec, points, reference), reference, keys)


def nearest_checkpoint(spec: WeightSpec, queries: Stack, bank: Bank, refine: int = 8) -> Nearest:
    """Distance of each query to its nearest bank checkpoint, unaligned and aligned (see the module docstring)."""
    keys = bank.keys
    plain, plain_index = nearest(flatten(queries, keys), flatten(bank.points, keys))
    unaligned, plain_index = plain[:, 0], plain_index[:, 0]
    framed = align_to(spec, queries, bank.reference)
    _, candidates = nearest(flatten(framed, keys), flatten(bank.aligned, keys), k=refine)
    q, k = candidates.shape
    a = {key: queries[key].repeat_interleave(k, dim=0) for key in keys}
    b = {key: bank.points[key][candidates.flatten()] for key in keys}
    element = weight_matching(spec, a, b, batch_dims=1).element
    moved = spec.apply(b, element, batch_dims=1)
    dist = (flatten(a, keys) - flatten(moved, keys)).norm(dim=1).reshape(q, k)
    best = dist.argmin(1)
    aligned, index = dist[torch.arange(q), best], candidates[torch.arange(q), best]
    closer = unaligned < aligned  # the identity is a candidate element too
    return Nearest(unaligned, torch.where(closer, unaligned, aligned), torch.where(closer, plain_index, index))


def closest_by_metric(metric: torch.Tensor, prompts: torch.Tensor, count: int) -> torch.Tensor:
    """(P, count) indices of the bank checkpoints whose metric is closest to each prompt."""
    return (metric.unsqueeze(0) - prompts.unsqueeze(1)).abs().topk(count, dim=1, largest=False).indices


def noisy_nearest(bank: Bank, metric: torch.Tensor, prompts: torch.Tensor, radius: torch.Tensor, count: int,
                  generator: torch.Generator) -> Stack:
    """Baseline (a): per prompt, the `count` training checkpoints closest to it in metric, each plus
    Gaussian noise of norm `radius[p]` (the generated checkpoints' distance); (P * count, *shape)."""
    index = closest_by_metric(metric, prompts, count)
    flat = flatten(bank.points, bank.keys)[index.flatten()]
    noise = torch.randn(flat.shape, generator=generator)
    noise = noise / noise.norm(dim=1, keepdim=True) * radius.repeat_interleave(count).unsqueeze(1)
    return unflatten(flat + noise, bank.points, bank.keys)


def averaged(bank: Bank, metric: torch.Tensor, prompts: torch.Tensor, k: int) -> Stack:
    """Baseline (b): per prompt, the mean of the `k` aligned training checkpoints closest to it in metric; (P, *shape)."""
    index = closest_by_metric(metric, prompts, k)
    return {key: v[index].mean(1) for key, v in bank.aligned.items()}
