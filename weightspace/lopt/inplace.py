"""The optimizer's step of a `LearnedRule`, in place: same update as `LearnedRule.forward`, less memory traffic.

`LearnedRule.forward` is pure (new tensors every step) so that meta-training can
backpropagate through it. `torch.optim.Optimizer.step` needs no gradient, so here the
accumulators move in place (one `lerp_` for all momenta, one `addcmul_` for the RMS),
the raw feature channels are written into one buffer per parameter kept between steps
(no concatenation, no fresh 10× parameter-size allocation and its page faults), the
meta-network reads them through its `forward_fused`, and the parameter takes the update
in place. Rounding differs from the pure path (lerp vs multiply-add), values agree to
float precision (tests/lopt/test_inplace.py checks both against the reference features).
"""
from __future__ import annotations

import math
from typing import Mapping

import torch

from ..spec import WeightSpec
from .features import FeatureConfig, State
from .native import native_step, scratch_size, supports_native
from .rule import LearnedRule


class Workspace:
    """Feature buffers (R, *shape) per parameter name, reused while the shape, dtype and device stay,
    and the native step's scratch."""

    def __init__(self):
        self._buffers: dict[str, torch.Tensor] = {}
        self._scratch = torch.empty(0)

    def raw(self, key: str, param: torch.Tensor, channels: int) -> torch.Tensor:
        buf = self._buffers.get(key)
        shape = (channels, *param.shape)
        if buf is None or buf.shape != shape or buf.dtype != param.dtype or buf.device != param.device:
            buf = torch.empty(shape, dtype=param.dtype, device=param.device)
            self._buffers[key] = buf
        return buf


    def scratch(self, numel: int) -> torch.Tensor:
        """A float32 CPU buffer of at least `numel` elements (the native step's), reused between steps."""
        if self._scratch.numel() < numel:
            self._scratch = torch.empty(numel)
        return self._scratch


def supports_inplace(rule: LearnedRule) -> bool:
    """Whether `inplace_step` serves this rule (a fused rule whose meta-network has `forward_fused`)."""
    return rule.fused and hasattr(rule.net, "forward_fused")


def _update_state_(state: State, grad: torch.Tensor, config: FeatureConfig) -> None:
    """`features.update_state`, in place."""
    momenta = state["momenta"]
    weights = torch.tensor([1.0 - d for d in config.momentum_decays], dtype=grad.dtype, device=grad.device)
    momenta.lerp_(grad.unsqueeze(0).expand_as(momenta), weights.reshape(-1, *([1] * grad.dim())))
    state["rms"].mul_(config.rms_decay).addcmul_(grad, grad, value=1.0 - config.rms_decay)
    state["step"].add_(1.0)


def _corrections(state: State, config: FeatureConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """1 / bias corrections of the RMS and of every momentum ((), (M,)), as 0-d/1-d tensors."""
    step = state["step"].clamp(min=1.0)
    decays = torch.tensor(config.momentum_decays, dtype=step.dtype, device=step.device)
    return 1.0 / (1.0 - config.rms_decay**step), 1.0 / (1.0 - decays**step)


def _raw_features_into(
    out: torch.Tensor, param: torch.Tensor, grad: torch.Tensor, state: State, config: FeatureConfig, inv_v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`features.raw_features` written into `out` (R, *shape); returns (out, inv_rms (R,), time (T,))."""
    eps, m = config.eps, len(config.momentum_decays)
    momenta, rms = state["momenta"], state["rms"]
    out[0].copy_(param)
    out[1].copy_(grad)
    out[2 : 2 + m].copy_(momenta)
    torch.add(rms, eps, out=out[2 + m]).sqrt_()
    rsqrt = torch.mul(rms, inv_v, out=out[3 + m]).add_(eps).rsqrt_()  # g/sqrt(v) is built on it, last
    torch.mul(momenta, rsqrt.unsqueeze(0), out=out[4 + m :])
    rsqrt.mul_(grad)
    flat = out.reshape(out.shape[0], -1)
    square = torch.linalg.vector_norm(flat, dim=1).square_() / max(flat.shape[1], 1)
    scales = torch.tensor(config.time_scales, dtype=param.dtype, device=param.device)
    return out, torch.rsqrt(square + eps), torch.tanh(state["step"] / scales)


def _nominal(rule: LearnedRule, state: State, inv_v: torch.Tensor, inv_m: torch.Tensor) -> torch.Tensor:
    """`LearnedRule.nominal_term` as a fresh tensor (it is consumed in place)."""
    i = rule.nominal_index
    if rule.nominal == "sgdm":
        return state["momenta"][i].clone()
    denom = (state["rms"] * inv_v).sqrt_().add_(rule.features.eps)
    return torch.div(state["momenta"][i], denom).mul_(inv_m[i])


@torch.no_grad()
def inplace_step(
    rule: LearnedRule,
    params: Mapping[str, torch.Tensor],
    grads: Mapping[str, torch.Tensor],
    states: Mapping[str, State],
    spec: WeightSpec | None,
    lrs: Mapping[str, float],
    workspace: Workspace,
) -> None:
    """One step of `rule` (see `supports_inplace`): `params` and `states` are updated in place.

    float32 CPU steps run the native kernel (`native.native_step`) where it builds; the
    torch ops below serve the rest.

    Args:
        params, grads, states: per key, as `LearnedRule.forward` takes them.
        spec: the spec restricted to these keys (for spec-aware meta-networks).
        lrs: per key, the factor of its whole update.
        workspace: the buffers kept between steps.
    """
    if supports_native(rule, params, grads, states, spec):
        size = scratch_size(rule, sum(p.numel() for p in params.values()))
        scratch = workspace.scratch(size) if size else None
        native_step(rule, params, grads, states, spec, lrs, scratch)
        return
    config = rule.features
    inv = {}
    parts = ({}, {}, {})
    for k, p in params.items():
        _update_state_(states[k], grads[k], config)
        inv[k] = _corrections(states[k], config)
        buf = workspace.raw(k, p, config.num_raw)
        for part, value in zip(parts, _raw_features_into(buf, p, grads[k], states[k], config, inv[k][0])):
            part[k] = value
    out = rule.net.forward_fused(*parts, spec=spec)
    alpha, beta = rule.log_alpha.exp(), rule.log_beta.exp()
    for k, p in params.items():
        step = _nominal(rule, states[k], *inv[k])
        learned = out[k]
        if rule.bound == "relative":
            rms = torch.linalg.vector_norm(step) / math.sqrt(max(step.numel(), 1))
            learned = learned.tanh_().mul_(rms)
        p.sub_(step.add_(learned, alpha=float(beta)), alpha=float(lrs[k] * alpha))
