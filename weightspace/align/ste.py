"""Straight-through estimator matching (Ainsworth et al. 2023, Sec. 3.3, Alg. 3).

Learns a proxy θ̃ for B's weights whose projection onto B's orbit (weight matching
of B onto θ̃) makes the midpoint ½(A + P·B) a good model: the forward pass uses
P·B, the gradient flows straight through to θ̃, and the data loss of the midpoint
is minimized with Adam. Returns the permutation of the last projection and the
midpoint loss of every step (`SteMatching`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..spec import GroupElement, WeightSpec
from .bn_reset import has_batchnorm
from .data import split_batch
from ..errors import AlignError
from .evaluate import LossFn
from .modules import with_weights
from .pair import check_pair
from .weight_matching import weight_matching


@dataclass(frozen=True)
class SteMatching:
    """The final element, and the midpoint loss at every step."""

    element: GroupElement
    losses: tuple[float, ...]


def ste_matching(
    model: nn.Module,
    spec: WeightSpec,
    sd_a: Mapping[str, torch.Tensor],
    sd_b: Mapping[str, torch.Tensor],
    batches: Iterable[Any],
    *,
    epochs: int = 1,
    lr: float = 1e-3,
    loss_fn: LossFn = F.cross_entropy,
    init: GroupElement | None = None,
    max_sweeps: int = 20,
    generator: torch.Generator | None = None,
) -> SteMatching:
    """STE matching of B onto A on labelled `batches`; see the module docstring.

    BatchNorm models run in train mode (batch statistics, as the merged model has
    no valid running statistics); others in eval mode. `init` defaults to weight
    matching; each projection starts from the previous permutation.
    """
    check_pair(sd_a, sd_b, spec)
    data = [split_batch(b) for b in batches]
    if not data or any(t is None for _, t in data):
        raise AlignError("STE matching needs (inputs, targets) batches")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    net = with_weights(model, sd_a).train(has_batchnorm(model))
    params = [k for k, _ in net.named_parameters() if k in spec.entries and sd_a[k].is_floating_point()]
    proxy = {k: sd_a[k].detach().clone().float().requires_grad_(True) for k in params}
    opt = torch.optim.Adam(list(proxy.values()), lr=lr)
    g = init if init is not None else weight_matching(spec, sd_a, sd_b, generator=gen).element
    losses = []
    for _ in range(epochs):
        for args, target in data:
            current = {**{k: v.detach() for k, v in sd_a.items()}, **{k: v.detach() for k, v in proxy.items()}}
            g = weight_matching(spec, current, sd_b, init=g, max_sweeps=max_sweeps, generator=gen).element
            pb = spec.apply(sd_b, g)
            mid = {}
            for k, ta in sd_a.items():
                if k in proxy:
                    straight = proxy[k] + (pb[k].to(proxy[k].dtype) - proxy[k]).detach()
                    mid[k] = 0.5 * (ta.detach() + straight)
                elif ta.is_floating_point():
                    mid[k] = 0.5 * (ta.detach() + pb[k].detach())
                else:
                    mid[k] = ta.detach().clone()
            loss = loss_fn(functional_call(net, mid, args, tie_weights=True, strict=False), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    current = {**dict(sd_a), **{k: v.detach() for k, v in proxy.items()}}
    g = weight_matching(spec, current, sd_b, init=g, max_sweeps=max_sweeps, generator=gen).element
    return SteMatching(g, tuple(losses))

