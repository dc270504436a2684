"""`zip_models`: merge models from different inits by their features, ZipIt! or CCA Merge, on any spec.

Both read each group's units on data through weightspace.align's activation
recording (the parser's activation sites, as activation matching does), build one
merge/unmerge matrix pair per group (`weightspace.merge.zipit`, `weightspace.merge.cca`)
and apply them on the spec's axes (`weightspace.merge.feature_maps`): no graph
written per architecture. Partial zipping (ZipIt!'s multi-head models) leaves groups
unzipped: from `depth` on, in forward order, those layers stay separate and the
models' outputs are averaged; the merged model is then wider in those groups
(`ZippedModel.sizes`), and `ZippedModel.module(template)` runs it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn

from ..errors import AlignError, ConfigError
from ..parser import ParsedModel, parse_model
from ..spec import WeightSpec
from .combine import StateDict, check_models
from .feature_maps import GroupMerge, apply_merges, consumed_axes
from .resized import resized_module

ZIP_METHODS = ("zipit", "cca")


@dataclass(frozen=True)
class ZippedModel:
    """The merged state dict, each group's merge/unmerge matrices, the groups zipped (forward order),
    each group's size in the merged model, and "reset_bn" or "none"."""

    state_dict: dict[str, torch.Tensor]
    method: str
    merges: Mapping[str, GroupMerge]
    zipped: tuple[str, ...]
    sizes: Mapping[str, int]
    postprocess: str

    def module(self, template: nn.Module) -> nn.Module:
        """A copy of `template` holding the merged weights (wider where groups stayed unzipped)."""
        return resized_module(template, self.state_dict)


def forward_order(parsed: ParsedModel) -> list[str]:
    """The spec's groups by the execution rank of the first entry that produces their units."""
    spec, roles = parsed.spec, parsed.roles
    first: dict[str, int] = {}
    for key, entry in spec.entries.items():
        role = roles.get(key)
        order = role.order if role is not None else len(roles)
        consumed = consumed_axes(key, entry, role)
        for a, axis in enumerate(entry.axes):
            for f in axis:
                if f.group is not None and a not in consumed:
                    first[f.group] = min(first.get(f.group, order), order)
    return sorted(spec.groups, key=lambda n: (first.get(n, len(roles)), list(spec.groups).index(n)))


def _chosen(spec: WeightSpec, order: list[str], depth: int | None, unzipped: Sequence[str]) -> tuple[str, ...]:
    unknown = [n for n in unzipped if n not in spec.groups]
    if unknown:
        raise ConfigError(f"unzipped names unknown groups {unknown[:4]}; the groups are {order[:8]}")
    if depth is not None and not (isinstance(depth, int) and 0 <= depth <= len(order)):
        raise ConfigError(f"depth must be an integer in [0, {len(order)}] (the number of groups), got {depth!r}")
    head = order if depth is None else order[:depth]
    return tuple(n for n in head if n not in set(unzipped))


def _group_merge(
    name: str, method: str, moments: list, k: int, n: int, same_model: bool, reg: float
) -> GroupMerge:
    """One zipped group's matrices (computed on the CPU, in float64) from its per-site moments."""
    from .cca import cca_matrices, cca_transform
    from .zipit import zip_clusters, zip_matrices

    if method == "cca" and max(m.n for m in moments) < n:
        raise AlignError(f"group {name!r}: CCA of {n} units needs at least as many samples per activation, got "
                         f"{max(m.n for m in moments)}: pass more data")
    if method == "zipit":
        corr = sum(m.stacked_correlation() for m in moments).cpu()
        return zip_matrices(zip_clusters(corr, k, same_model), k * n)

    def cov(i: int, j: int) -> torch.Tensor:
        return sum(m.covariance(i, j) for m in moments).cpu()

    eye = torch.eye(n, dtype=torch.float64)
    return cca_matrices([eye] + [cca_transform(cov(0, 0), cov(i, i), cov(0, i), reg) for i in range(1, k)])


def zip_models(
    models: Sequence[StateDict],
    model: nn.Module,
    batches: Iterable[Any],
    *,
    method: str = "zipit",
    parsed: ParsedModel | None = None,
    depth: int | None = None,
    unzipped: Sequence[str] = (),
    same_model: bool = True,
    reg: float = 1e-6,
    reset_bn: bool = True,
    max_batches: int | None = None,
) -> ZippedModel:
    """Merge `models` (two or more, of one architecture, any inits) by ZipIt! or CCA Merge.

    Args:
        model: template module of the models (never modified).
        batches: inputs or (inputs, targets) batches of one shape; their activations
            drive the matching, and BatchNorm statistics are recomputed on them (`reset_bn`).
        method: "zipit" (greedy feature zipping within and across models) or "cca"
            (linear maps into model 0's units from canonical correlation analysis).
        parsed: `ws.parse_model(model, ...)` on a batch of that shape; parsed on the first batch by default.
        depth: zip only the first `depth` groups in forward order (`forward_order`); the
            rest stay separate (partial zipping). None: all groups.
        unzipped: further groups to leave separate.
        same_model: zipit: allow merging two features of one model (the paper's setting).
        reg: cca: ridge on the covariances, relative to their mean variance.
        max_batches: read at most this many batches.
    ConfigError for bad arguments, KeyMismatchError / ShapeMismatchError for models that
    do not fit one another, AlignError when a zipped group shows in no activation of its own.
    """
    from ..align.activation_matching import unit_moments
    from ..align.bn_reset import has_batchnorm, reset_batchnorm
    from ..align.data import input_batches

    models = list(models)
    if method not in ZIP_METHODS:
        raise ConfigError(f"unknown zip method {method!r}; expected one of {ZIP_METHODS}")
    if len(models) < 2:
        raise ConfigError(f"zip_models needs at least two models, got {len(models)}")
    batches = list(batches)
    inputs = list(input_batches(batches, max_batches))
    if not inputs:
        raise ConfigError("zip_models needs at least one batch of data")
    if parsed is None:
        parsed = parse_model(model, inputs[0])
    spec, k = parsed.spec, len(models)
    check_models(models, spec=spec)
    order = forward_order(parsed)
    zipped = _chosen(spec, order, depth, unzipped)
    # zipit correlates every pair of models; cca only the anchor with each model
    pairs = None if method == "zipit" else ((0, 0), *(p for i in range(1, k) for p in ((i, i), (0, i))))
    single, _ = unit_moments(model, parsed, models, inputs, pairs=pairs)
    merges: dict[str, GroupMerge] = {}
    for name in order:
        n = spec.groups[name].size
        if name not in zipped:
            merges[name] = GroupMerge.stacked(k, n)
            continue
        if not single[name]:
            raise AlignError(f"group {name!r} shows in no activation on its own (only factored with another "
                             "group, as heads × head_dim): leave it unzipped")
        merges[name] = _group_merge(name, method, single[name], k, n, same_model, reg)
    merged = apply_merges(spec, parsed.roles, models, merges)
    sizes = {name: g.size for name, g in merges.items()}
    if reset_bn and has_batchnorm(model):
        resized = any(sizes[n] != spec.groups[n].size for n in sizes)
        template = resized_module(model, merged) if resized else model
        return ZippedModel(reset_batchnorm(template, merged, batches, max_batches), method, merges, zipped, sizes,
                           "reset_bn")
    return ZippedModel(merged, method, merges, zipped, sizes, "none")
