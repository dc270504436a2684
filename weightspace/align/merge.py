"""MergeMany (Ainsworth et al. 2023, Alg. 2): align many models to their running mean.

Merge methods over an aligned frame (soups, SLERP, TIES, ...) live in `weightspace.merge`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from ..spec import GroupElement, WeightSpec
from ..errors import AlignError
from .interpolate import interpolate
from .pair import check_pair
from .weight_matching import weight_matching

StateDict = Mapping[str, torch.Tensor]


def _mean(sds: Sequence[StateDict]) -> dict[str, torch.Tensor]:
    out = {}
    for key, t in sds[0].items():
        if t.is_floating_point():
            out[key] = torch.stack([sd[key].detach().to(t.dtype) for sd in sds]).mean(0)
        else:
            out[key] = t.detach().clone()
    return out


def _same(g: GroupElement, h: GroupElement) -> bool:
    return set(g.perms) == set(h.perms) and all(torch.equal(g.perms[n], h.perms[n]) for n in g.perms)


@dataclass(frozen=True)
class MergeResult:
    """The merged state dict, each model's element (apply it to align that model), rounds run."""

    state_dict: dict[str, torch.Tensor]
    elements: tuple[GroupElement, ...]
    rounds: int
    converged: bool


def merge_many(
    spec: WeightSpec,
    state_dicts: Sequence[StateDict],
    *,
    max_rounds: int = 20,
    generator: torch.Generator | None = None,
    **match,
) -> MergeResult:
    """Align every model to the mean of the others (aligned) until no permutation changes.

    Each round visits the models in random order; model i is re-matched against the
    mean of the other models' current aligned weights, starting from its previous
    element. The first model is the reference frame: the others are aligned to it in
    the first round before the mean has formed.
    """
    if len(state_dicts) < 2:
        raise AlignError(f"merge_many needs at least two models, got {len(state_dicts)}")
    for sd in state_dicts[1:]:
        check_pair(state_dicts[0], sd, spec)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    elements = [spec.identity() for _ in state_dicts]
    aligned = [dict(sd) for sd in state_dicts]
    for i in range(1, len(state_dicts)):
        elements[i] = weight_matching(spec, state_dicts[0], state_dicts[i], generator=gen, **match).element
        aligned[i] = spec.apply(state_dicts[i], elements[i])
    converged, rounds = False, 0
    for rounds in range(1, max_rounds + 1):
        changed = False
        for i in torch.randperm(len(state_dicts), generator=gen).tolist():
            target = _mean([sd for j, sd in enumerate(aligned) if j != i])
            g = weight_matching(spec, target, state_dicts[i], init=elements[i], generator=gen, **match).element
            if not _same(g, elements[i]):
                changed = True
                elements[i] = g
                aligned[i] = spec.apply(state_dicts[i], g)
        if not changed:
            converged = True
            break
    return MergeResult(_mean(aligned), tuple(elements), rounds, converged)
