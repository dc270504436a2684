"""The common frame: permute every model onto an anchor before merging (weight, activation or STE matching).

Methods made for fine-tunes of one init assume the models share a frame; models from
different inits do not, so each one is first aligned to the anchor with one of
weightspace.align's matchings. Alignment changes no model's function.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..spec import GroupElement, WeightSpec

ALIGNMENTS = ("none", "weight", "activation", "ste")
StateDict = Mapping[str, torch.Tensor]


def check_alignment(align: str, spec: WeightSpec | None, model: nn.Module | None, batches) -> None:
    """ConfigError unless `align` is known and has what it needs (a spec; a model and data beyond weight matching)."""
    if align not in ALIGNMENTS:
        raise ConfigError(f"unknown alignment {align!r}; expected one of {ALIGNMENTS}")
    if align == "none":
        return
    if spec is None:
        raise ConfigError(f"align={align!r} needs the models' spec")
    if align in ("activation", "ste") and (model is None or batches is None):
        raise ConfigError(f"align={align!r} needs the template model and data batches")


def element_to(
    align: str,
    spec: WeightSpec,
    anchor: StateDict,
    sd: StateDict,
    *,
    model: nn.Module | None = None,
    batches: Iterable[Any] | None = None,
    generator: torch.Generator | None = None,
    **match,
) -> GroupElement:
    """The element g with `spec.apply(sd, g)` aligned to `anchor` by the chosen matching."""
    from .. import align as al

    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    if align == "weight":
        return al.weight_matching(spec, anchor, sd, generator=gen, **match).element
    if align == "activation":
        return al.activation_matching(model, anchor, sd, batches, **match)
    return al.ste_matching(model, spec, anchor, sd, batches, generator=gen, **match).element


def align_all(
    align: str,
    spec: WeightSpec | None,
    anchor: StateDict,
    models: Sequence[StateDict],
    **kwargs,
) -> list[GroupElement | None]:
    """One element per model (None when align="none"); a model that is the anchor object gets the identity."""
    if align == "none":
        return [None] * len(models)
    return [spec.identity() if sd is anchor else element_to(align, spec, anchor, sd, **kwargs) for sd in models]
