"""Per-parameter accumulators and the features a learned optimizer reads.

Metz et al., *Practical tradeoffs between memory, compute, and performance in
learned optimizers* (2022), "small_fc_lopt": each parameter keeps momenta at several
decays and an RMS of its gradient; the meta-network reads the parameter, the
gradient, the momenta, RMS-normalized gradient and momenta, and a time encoding.
Every feature channel is normalized by its second moment over the tensor, so the
meta-network sees O(1) inputs whatever the task's gradient scale. That normalization
is a mean over all elements of one tensor, hence invariant to any permutation of
them: the features are equivariant to the task model's weight-space symmetries.

All functions are pure (new tensors, inputs untouched) and differentiable, so the
same code serves the `torch.optim.Optimizer` and truncated backprop through unrolls.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..errors import ConfigError

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class FeatureConfig:
    """Which accumulators to keep and how to encode time.

    Args:
        momentum_decays: EMA decays of the gradient (m_i = d_i m_i + (1 - d_i) g).
        rms_decay: EMA decay of the squared gradient.
        time_scales: time features are tanh(step / s) for each s.
        eps: added under square roots and normalizers.
    """

    momentum_decays: tuple[float, ...] = (0.5, 0.9, 0.99)
    rms_decay: float = 0.999
    time_scales: tuple[float, ...] = (10.0, 100.0, 1000.0, 10000.0)
    eps: float = 1e-8

    def __post_init__(self):
        decays = (*self.momentum_decays, self.rms_decay)
        if not self.momentum_decays or not all(0.0 <= d < 1.0 for d in decays):
            raise ConfigError(f"decays must lie in [0, 1) and momenta be non-empty, got {decays}")
        if not all(s > 0 for s in self.time_scales):
            raise ConfigError(f"time scales must be positive, got {self.time_scales}")

    @property
    def num_raw(self) -> int:
        """Channels R of `raw_features` (every channel but time)."""
        return 4 + 2 * len(self.momentum_decays)

    @property
    def num_features(self) -> int:
        """Channels C of `features`: p, g, momenta, rms, g/rms, momenta/rms, time."""
        m = len(self.momentum_decays)
        return 4 + 2 * m + len(self.time_scales)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        return cls(
            tuple(float(x) for x in d["momentum_decays"]),
            float(d["rms_decay"]),
            tuple(float(x) for x in d["time_scales"]),
            float(d["eps"]),
        )


def init_state(param: torch.Tensor, config: FeatureConfig) -> State:
    """Zero accumulators for one parameter (the step counter is a float tensor)."""
    m = len(config.momentum_decays)
    return {
        "step": torch.zeros((), dtype=param.dtype, device=param.device),
        "momenta": torch.zeros(m, *param.shape, dtype=param.dtype, device=param.device),
        "rms": torch.zeros_like(param),
    }


def update_state(state: State, grad: torch.Tensor, config: FeatureConfig) -> State:
    """The accumulators after seeing `grad` (a new dict; `state` is not modified)."""
    decays = torch.tensor(config.momentum_decays, dtype=grad.dtype, device=grad.device)
    decays = decays.reshape(-1, *([1] * grad.dim()))
    momenta = decays * state["momenta"] + (1.0 - decays) * grad.unsqueeze(0)
    rms = config.rms_decay * state["rms"] + (1.0 - config.rms_decay) * grad * grad
    return {"step": state["step"] + 1.0, "momenta": momenta, "rms": rms}


def corrected_rms(state: State, config: FeatureConfig) -> torch.Tensor:
    """Bias-corrected second-moment EMA (as in Adam)."""
    correction = 1.0 - config.rms_decay ** state["step"].clamp(min=1.0)
    return state["rms"] / correction


def corrected_momentum(state: State, config: FeatureConfig, index: int) -> torch.Tensor:
    """Bias-corrected momentum `index` (as in Adam)."""
    correction = 1.0 - config.momentum_decays[index] ** state["step"].clamp(min=1.0)
    return state["momenta"][index] / correction


def raw_features(
    param: torch.Tensor, grad: torch.Tensor, state: State, config: FeatureConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The unnormalized channels, their normalizers and the time encoding of one tensor.

    Returns (raw (R, *param.shape), inv_rms (R,), time (T,)): `features` is
    `cat([raw * inv_rms, time broadcast])`. Meta-networks that fold `inv_rms` and
    `time` into their first layer (`PerParameterMLP.forward_fused`) read these and
    never build the full (C, *shape) feature tensor.
    """
    eps = config.eps
    rsqrt = torch.rsqrt(corrected_rms(state, config) + eps)
    momenta = state["momenta"]
    raw = torch.cat(
        [
            param.unsqueeze(0),
            grad.unsqueeze(0),
            momenta,
            (state["rms"] + eps).sqrt().unsqueeze(0),
            (grad * rsqrt).unsqueeze(0),
            momenta * rsqrt.unsqueeze(0),
        ]
    )
    flat = raw.reshape(raw.shape[0], -1)
    square = torch.linalg.vector_norm(flat, dim=1).square() / flat.shape[1]
    scales = torch.tensor(config.time_scales, dtype=param.dtype, device=param.device)
    return raw, torch.rsqrt(square + eps), torch.tanh(state["step"] / scales)


def features(param: torch.Tensor, grad: torch.Tensor, state: State, config: FeatureConfig) -> torch.Tensor:
    """Per-parameter features (C, *param.shape) from the accumulators after `update_state`.

    Channels: parameter, gradient, momenta, sqrt(rms), g/sqrt(rms), momenta/sqrt(rms)
    (each normalized by its RMS over the tensor), then tanh(step / s) per time scale.
    """
    return assemble(*raw_features(param, grad, state, config))


def assemble(raw: torch.Tensor, inv_rms: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
    """The features (C, *shape) of one tensor from `raw_features`' (raw, inv_rms, time)."""
    view = (-1,) + (1,) * (raw.dim() - 1)
    return torch.cat([raw * inv_rms.reshape(view), time.reshape(view).expand(-1, *raw.shape[1:])])
