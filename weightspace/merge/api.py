"""`merge_models`: align (optionally), merge with a named method, then BatchNorm reset or REPAIR."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..spec import GroupElement, WeightSpec
from .combine import StateDict, check_models, combine
from .frame import align_all, check_alignment
from .methods import method


@dataclass(frozen=True)
class MergedModel:
    """The merged state dict; per model the element that aligned it to the anchor (None: not aligned)."""

    state_dict: dict[str, torch.Tensor]
    method: str
    elements: tuple[GroupElement | None, ...]
    postprocess: str  # "none", "reset_bn" or "repair"


def merge_models(
    models: Sequence[StateDict],
    method_name: str = "linear",
    *,
    base: StateDict | None = None,
    spec: WeightSpec | None = None,
    align: str = "none",
    model: nn.Module | None = None,
    batches: Iterable[Any] | None = None,
    reset_bn: bool = True,
    repair: bool = False,
    generator: torch.Generator | None = None,
    match: Mapping[str, Any] | None = None,
    **options,
) -> MergedModel:
    """Merge `models` with `method_name` (see weightspace.merge.methods) in one frame.

    With `align` ("weight", "activation" or "ste"; needs `spec`, and for the last two
    `model` and `batches`), every model is first permuted onto the anchor: the base
    model when one is given (task-vector methods), else model 0. Only floating-point
    entries are merged; integer buffers come from the anchor model 0. With `model`
    and `batches`, a model with BatchNorm gets its running statistics recomputed
    (`reset_bn`), or with `repair=True` (linear merges of two models) REPAIR instead.
    Inputs are never modified. ConfigError for bad arguments; KeyMismatchError /
    ShapeMismatchError for models that do not fit.
    """
    models = list(models)
    if not models:
        raise ConfigError("merge_models needs at least one model")
    m = method(method_name)
    m.check(len(models), base is not None, options)
    check_alignment(align, spec, model, batches)
    check_models(models, base, spec)
    if repair and (method_name != "linear" or len(models) != 2 or model is None or batches is None or spec is None):
        raise ConfigError("repair=True applies to a linear merge of two models and needs spec, model and batches")
    anchor = base if base is not None else models[0]
    batches = list(batches) if batches is not None else None
    elements = align_all(align, spec, anchor, models, model=model, batches=batches, generator=generator, **dict(match or {}))
    framed = [sd if g is None else spec.apply(sd, g) for sd, g in zip(models, elements)]
    if repair:
        from ..align import repair as repair_fn

        w = options.get("weights") or (1.0, 1.0)
        merged = repair_fn(model, spec, framed[0], framed[1], float(w[1]) / float(w[0] + w[1]), batches)
        return MergedModel(merged, method_name, tuple(elements), "repair")
    merged = combine(method_name, framed, base, **options)
    from ..align.bn_reset import has_batchnorm, reset_batchnorm

    if reset_bn and model is not None and batches is not None and has_batchnorm(model):
        return MergedModel(reset_batchnorm(model, merged, batches), method_name, tuple(elements), "reset_bn")
    return MergedModel(merged, method_name, tuple(elements), "none")


@dataclass(frozen=True)
class GreedySoup:
    """The soup, the indices of the models it averages (in the order added), and its score."""

    state_dict: dict[str, torch.Tensor]
    chosen: tuple[int, ...]
    score: float


def greedy_soup(models: Sequence[StateDict], evaluate: Callable[[dict[str, torch.Tensor]], float]) -> GreedySoup:
    """Greedy soup (Wortsman et al. 2022): add models best-first while the uniform average scores no worse.

    `evaluate(state_dict)` returns a score, higher is better (held-out accuracy, say).
    Models must already share a frame (align them first for different inits).
    """
    models = list(models)
    if not models:
        raise ConfigError("greedy_soup needs at least one model")
    check_models(models)
    scores = [float(evaluate(dict(sd))) for sd in models]
    order = sorted(range(len(models)), key=lambda i: -scores[i])
    chosen, best = [order[0]], scores[order[0]]
    soup = combine("linear", [models[order[0]]])
    for i in order[1:]:
        candidate = combine("linear", [models[j] for j in (*chosen, i)])
        score = float(evaluate(candidate))
        if score >= best:
            chosen, best, soup = chosen + [i], score, candidate
    return GreedySoup(soup, tuple(chosen), best)
