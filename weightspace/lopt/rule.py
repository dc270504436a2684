"""`LearnedRule`: the learned update, a pure function of parameters, gradients and state.

Zhou, Finn & Harrison, *Universal Neural Functionals* (2024), §4.2, after Harrison
et al. (2022): the update of every parameter is

    p <- p - lr · α · (nominal + β · f(features)),

where `nominal` is a hand-designed term (SGD momentum, or Adam's direction), f is a
meta-network over the per-parameter features, and the scalars α, β are learned
(stored as logs, so they stay positive). f starts near zero, so an untrained rule
is its nominal optimizer. The rule is an `nn.Module` whose forward is pure and
differentiable: the `torch.optim` wrapper calls it under no_grad, meta-training
backpropagates through it.

Magnitude control (`bound="relative"`, the default). The meta-network reads features
normalized per tensor, so a raw output f has the same size whatever the gradient: past
the meta-training horizon, as gradients vanish, β·f becomes a constant-size drift (we
measured the learned term at 10^5 × the nominal term and weight norms growing steadily
at 1000 steps, 6.7× the horizon). With the bound the learned term is

    β · rms_T(nominal) · tanh(f)        (rms over the elements of each tensor T),

so per tensor ‖learned‖₂ ≤ β ‖nominal‖₂ and ‖update‖₂ ≤ lr·α·(1 + β)·‖nominal‖₂ for any
features, at any step: a stationary point of the loss (zero gradient momentum) is a
fixed point of the optimizer, as for SGD and Adam. Both factors are invariant to
permutations of a tensor's elements, so the rule stays spec-equivariant. `bound="none"`
is the unbounded rule of UNF §4.2 (and the reading of files saved without the key).

The default nominal term is Adam's direction m̂/√v̂ (per element at most about 1), so
each element moves by at most about lr·α·(1 + β) per step whatever the gradient's
scale. Over the SGD-momentum nominal the bound removes the drift but keeps SGD's
step-size instability (a loss spike scales the step; we measured divergence at 2× the
horizon), which Adam's normalization does not have.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from ..errors import ConfigError, LoptError
from ..spec import WeightSpec
from .features import FeatureConfig, State, corrected_momentum, corrected_rms, features, raw_features, update_state
from .nets import DeepSetMLP, GroupContextMLP, MetaNet, PerParameterMLP

NOMINALS = ("sgdm", "adam")
BOUNDS = ("relative", "none")
DEFAULT_ALPHA = {"sgdm": 0.3, "adam": 0.01}
DEFAULT_BETA = {"relative": 3.0, "none": 0.03}
NET_KINDS = ("mlp", "deepset", "groups", "unf", "graph")


def make_net(kind: str, in_channels: int, spec: WeightSpec | None = None, **kwargs) -> MetaNet:
    """A meta-network by name: "mlp", "deepset", "groups", "graph" (any spec) or "unf" (needs `spec`)."""
    if kind == "mlp":
        return PerParameterMLP(in_channels, **kwargs)
    if kind == "deepset":
        return DeepSetMLP(in_channels, **kwargs)
    if kind == "groups":
        return GroupContextMLP(in_channels, **kwargs)
    if kind == "graph":
        from .graph_net import GraphMetaNet

        return GraphMetaNet(in_channels, **kwargs)
    if kind == "unf":
        if spec is None:
            raise ConfigError("a 'unf' meta-network is built over a task spec: pass spec=...")
        from .unf_net import UNFMetaNet

        return UNFMetaNet(spec, in_channels, **kwargs)
    raise ConfigError(f"unknown meta-network kind {kind!r}; expected one of {NET_KINDS}")


class LearnedRule(nn.Module):
    """Learned update rule: nominal term + β · meta-network output, scaled by α.

    Args:
        net: the meta-network (its in_channels must equal `features.num_features`,
            its out_channels 1).
        features: accumulators and features (`FeatureConfig`).
        nominal: "adam" (default: bias-corrected momentum over sqrt of the bias-corrected
            RMS) or "sgdm" (the momentum of decay `nominal_decay`, as in UNF).
        nominal_decay: which of `features.momentum_decays` the nominal term uses.
        alpha, beta: initial values of the learned scalars (alpha defaults to
            `DEFAULT_ALPHA[nominal]`, about the tuned SGD-momentum / Adam step; beta to
            `DEFAULT_BETA[bound]`: with the bound, β is the largest learned step
            relative to the nominal one).
        bound: "relative" (learned term β·rms(nominal)·tanh(f), see the module
            docstring) or "none" (β·f).

    Attribute `fused` (default True): use the meta-network's `forward_fused` where it
    has one (per-parameter MLP, Deep Set, group context, graph): the same update to float rounding, at a
    fraction of the memory traffic. Set it False to run the reference path.

    Attribute `native` (default True): the optimizer's step runs the compiled kernel of
    `weightspace.lopt.native` where it applies (fused mlp/deepset/groups, float32, CPU);
    False keeps the torch in-place step.
    """

    def __init__(
        self,
        net: MetaNet,
        features: FeatureConfig | None = None,
        *,
        nominal: str = "adam",
        nominal_decay: float = 0.9,
        alpha: float | None = None,
        beta: float | None = None,
        bound: str = "relative",
    ):
        super().__init__()
        self.features = features or FeatureConfig()
        if nominal not in NOMINALS:
            raise ConfigError(f"unknown nominal term {nominal!r}; expected one of {NOMINALS}")
        if nominal_decay not in self.features.momentum_decays:
            raise ConfigError(f"nominal_decay {nominal_decay} is not one of {self.features.momentum_decays}")
        if net.in_channels != self.features.num_features or net.out_channels != 1:
            raise ConfigError(
                f"meta-network takes {net.in_channels} -> {net.out_channels} channels; the rule needs "
                f"{self.features.num_features} -> 1"
            )
        if bound not in BOUNDS:
            raise ConfigError(f"unknown bound {bound!r}; expected one of {BOUNDS}")
        alpha = DEFAULT_ALPHA[nominal] if alpha is None else alpha
        beta = DEFAULT_BETA[bound] if beta is None else beta
        if alpha <= 0 or beta <= 0:
            raise ConfigError(f"alpha and beta must be positive, got {alpha}, {beta}")
        self.net = net
        self.nominal = nominal
        self.bound = bound
        self.nominal_index = self.features.momentum_decays.index(nominal_decay)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(alpha)))
        self.log_beta = nn.Parameter(torch.tensor(math.log(beta)))
        self.fused = True
        self.native = True

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    @property
    def beta(self) -> float:
        return float(self.log_beta.detach().exp())

    def nominal_term(self, state: State) -> torch.Tensor:
        if self.nominal == "sgdm":
            return state["momenta"][self.nominal_index]
        m = corrected_momentum(state, self.features, self.nominal_index)
        return m / (corrected_rms(state, self.features).sqrt() + self.features.eps)

    def learned_term(self, out: torch.Tensor, nominal: torch.Tensor) -> torch.Tensor:
        """The meta-network's contribution before β: f, or rms(nominal)·tanh(f) with the bound."""
        if self.bound == "none":
            return out
        rms = torch.linalg.vector_norm(nominal) / math.sqrt(max(nominal.numel(), 1))
        return rms * torch.tanh(out)

    def forward(
        self,
        params: Mapping[str, torch.Tensor],
        grads: Mapping[str, torch.Tensor],
        states: Mapping[str, State],
        spec: WeightSpec | None = None,
        lr: float | torch.Tensor = 1.0,
    ) -> tuple[dict[str, torch.Tensor], dict[str, State]]:
        """New parameters and states after one step (inputs are not modified).

        Args:
            params, grads, states: per key; `states` from `init_state`/earlier steps.
            spec: the task model's spec restricted to these keys (`prepare_spec`),
                for meta-networks that read it.
            lr: multiplies the whole update (what LR schedulers change).
        """
        if params.keys() != grads.keys() or params.keys() != states.keys():
            raise LoptError("LearnedRule: params, grads and states must have the same keys")
        new_states = {k: update_state(states[k], grads[k], self.features) for k in params}
        if self.fused and hasattr(self.net, "forward_fused"):
            parts = {k: raw_features(params[k], grads[k], new_states[k], self.features) for k in params}
            out = self.net.forward_fused(*({k: v[i] for k, v in parts.items()} for i in range(3)), spec=spec)
        else:
            feats = {
                k: features(params[k], grads[k], new_states[k], self.features).unsqueeze(0) for k in params
            }
            out = {k: v[0, 0] for k, v in self.net(feats, spec).items()}
        alpha, beta = self.log_alpha.exp(), self.log_beta.exp()
        new_params = {}
        for k in params:
            nominal = self.nominal_term(new_states[k])
            new_params[k] = params[k] - lr * alpha * (nominal + beta * self.learned_term(out[k], nominal))
        return new_params, new_states

    def config(self) -> dict:
        """Everything needed to rebuild the rule (saved beside its weights)."""
        return {
            "net": {"kind": self.net.kind, **self.net.config()},
            "features": self.features.to_dict(),
            "nominal": self.nominal,
            "nominal_decay": self.features.momentum_decays[self.nominal_index],
            "bound": self.bound,
        }

    @classmethod
    def build(
        cls,
        kind: str,
        spec: WeightSpec | None = None,
        features: FeatureConfig | None = None,
        *,
        hidden: int = 32,
        layers: int = 2,
        **rule_kwargs,
    ) -> "LearnedRule":
        """A fresh rule with a meta-network of `kind` (see `make_net`)."""
        features = features or FeatureConfig()
        net = make_net(kind, features.num_features, spec, hidden=hidden, layers=layers)
        return cls(net, features, **rule_kwargs)

    def __repr__(self) -> str:
        return (
            f"LearnedRule({self.net!r}, nominal={self.nominal}, bound={self.bound}, alpha={self.alpha:.3g}, "
            f"beta={self.beta:.3g})"
        )
