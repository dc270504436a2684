"""REPAIR (Jordan et al., *REPAIR: REnormalizing Permuted Activations for Interpolation Repair*, ICLR 2023).

Interpolating two aligned networks shrinks the variance of hidden units ("variance
collapse"). REPAIR rescales and shifts each unit of the merged network so that its
pre-activation mean and standard deviation on data equal the interpolation of the
endpoints' statistics; here the correction is folded into the producing
Linear/Conv layer's weight rows and bias, layer by layer in forward order (each
layer is measured with the earlier ones already repaired), so the result is a
plain state dict of the same architecture.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from ..spec import WeightSpec
from .data import input_batches
from ..errors import AlignError
from .interpolate import interpolate
from .modules import load_into, with_weights

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class UnitStats:
    """Per-unit mean and standard deviation of one layer's output."""

    mean: torch.Tensor
    std: torch.Tensor


def repair_layers(model: nn.Module, spec: WeightSpec) -> list[str]:
    """Linear/Conv modules (forward order) whose output units are one permutation group."""
    names = []
    for name, m in model.named_modules():
        key = f"{name}.weight" if name else "weight"
        if isinstance(m, _LAYERS) and key in spec.entries:
            axis = spec.entries[key].axes[0]
            if len(axis) == 1 and axis[0].group is not None:
                names.append(name)
    return names


@torch.no_grad()
def unit_stats(model: nn.Module, sd, layers: list[str], inputs: list[tuple]) -> dict[str, UnitStats]:
    """Mean/std per output unit of each named layer, over all inputs (eval mode)."""
    net = with_weights(model, sd).eval()
    sums: dict[str, list] = {}

    def hook(name):
        def fn(module, args, out):
            channel = -1 if isinstance(module, nn.Linear) else 1
            x = out.movedim(channel, -1).reshape(-1, out.shape[channel]).double()
            s = sums.setdefault(name, [0, 0.0, 0.0])
            s[0] += x.shape[0]
            s[1] = s[1] + x.sum(0)
            s[2] = s[2] + (x * x).sum(0)

        return fn

    modules = dict(net.named_modules())
    handles = [modules[name].register_forward_hook(hook(name)) for name in layers]
    try:
        for args in inputs:
            net(*args)
    finally:
        for h in handles:
            h.remove()
    out = {}
    for name, (n, s, q) in sums.items():
        mean = s / n
        out[name] = UnitStats(mean, (q / n - mean**2).clamp_min(0).sqrt())
    return out


def repair(
    model: nn.Module,
    spec: WeightSpec,
    sd_a: Mapping[str, torch.Tensor],
    sd_b: Mapping[str, torch.Tensor],
    alpha: float,
    batches: Iterable[Any],
    *,
    max_batches: int | None = None,
    eps: float = 1e-5,
) -> dict[str, torch.Tensor]:
    """The interpolation (1-α)·A + α·B with REPAIR applied; B must already be aligned to A.

    Returns a new state dict; layers without a bias are rescaled only.
    """
    inputs = list(input_batches(batches, max_batches))
    if not inputs:
        raise AlignError("REPAIR needs at least one batch of data")
    layers = repair_layers(model, spec)
    stats_a = unit_stats(model, sd_a, layers, inputs)
    stats_b = unit_stats(model, sd_b, layers, inputs)
    merged = interpolate(sd_a, sd_b, alpha)
    net = with_weights(model, merged)
    for name in layers:
        current = unit_stats(net, merged, [name], inputs)[name]
        target_mean = (1 - alpha) * stats_a[name].mean + alpha * stats_b[name].mean
        target_std = (1 - alpha) * stats_a[name].std + alpha * stats_b[name].std
        scale = target_std / (current.std + eps)
        w = merged[f"{name}.weight"]
        shape = (-1,) + (1,) * (w.dim() - 1)
        merged[f"{name}.weight"] = (w.double() * scale.reshape(shape)).to(w.dtype)
        bias_key = f"{name}.bias"
        if bias_key in merged:
            b = merged[bias_key].double()
            merged[bias_key] = (scale * (b - current.mean) + target_mean).to(merged[bias_key].dtype)
        load_into(net, merged)
    return merged
