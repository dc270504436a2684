"""`CheckpointDiffusion`: a conditional diffusion model of checkpoints (G.pt, Peebles et al. 2022).

Given a start checkpoint θ_s with metric m_s and a prompted metric m_t, it samples
a target checkpoint θ_t. Parameterization: the diffusion runs on the normalized
update x_0 = norm(θ_t − θ_s) (per-tensor statistics, `PairNormalizer`), and the
denoiser predicts the clean x_0 from (x_t, norm(θ_s), t, m_s, m_t) — G.pt's
x_0-prediction, applied to the update rather than the raw target: the start is an
input anyway, an update of zero is the natural starting guess (both denoisers
start there), and updates of one run share a scale that raw checkpoints of
different inits do not. The noisy target θ_s + x_t is the noisy update shifted by
the known start, so the two views carry the same information. Training is DDPM
(cosine schedule, uniform t, MSE on x_0 averaged over every parameter); sampling is
deterministic DDIM with a step count.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ..errors import ConfigError
from ..spec import WeightSpec
from .equivariant import EquivariantDenoiser
from .normalize import PairNormalizer
from .pairs import CheckpointPairs
from .schedule import add_noise, cosine_alpha_bar, ddim_sample
from .transformer import TransformerDenoiser

DENOISERS = {"equivariant": EquivariantDenoiser, "transformer": TransformerDenoiser}
DEFAULT_STEPS = 50
TRANSFORMER_HIDDEN = 64
_WIDTHS = range(2, 257)


def parameter_count(module: nn.Module) -> int:
    """The number of learnable numbers in `module`."""
    return sum(p.numel() for p in module.parameters())


def matched_hidden(spec: WeightSpec, layers: int = 4, **equivariant_kwargs) -> int:
    """The equivariant denoiser's width (2 to 256) whose parameter count is closest to the
    default transformer denoiser's (hidden 64, same `layers`) on `spec`: equal budgets by default.

    The count is a quadratic in the width (channel mixing, FiLM and embeddings), so three
    models built on the meta device (allocating nothing) give it for every width.
    """
    with torch.device("meta"):
        budget = parameter_count(TransformerDenoiser(spec, TRANSFORMER_HIDDEN, layers))
        y0, y1, y2 = (parameter_count(EquivariantDenoiser(spec, w, layers, **equivariant_kwargs)) for w in (4, 8, 12))
    # Newton form through (4, y0), (8, y1), (12, y2)
    d1, d2 = (y1 - y0) / 4, (y2 - 2 * y1 + y0) / 32
    count = lambda w: y0 + d1 * (w - 4) + d2 * (w - 4) * (w - 8)  # noqa: E731
    return min(_WIDTHS, key=lambda w: abs(count(w) - budget))


def _metric(m, batch: int, name: str) -> torch.Tensor:
    """`m` (a number, (1,) or (B,)) as (B,)."""
    t = torch.as_tensor(m).reshape(-1)
    if t.numel() not in (1, batch):
        raise ConfigError(f"{name} must be one number or {batch} (one per start), got {t.numel()}")
    return t.expand(batch)


class CheckpointDiffusion(nn.Module):
    """DDPM over checkpoint updates of one spec, conditioned on the start checkpoint and two metrics.

    Args:
        spec: the checkpoints' spec (every entry is generated).
        denoiser: "equivariant" (`EquivariantDenoiser`, ours) or "transformer"
            (`TransformerDenoiser`, G.pt's).
        hidden: channels (equivariant) or token width (transformer); default: 64 for the
            transformer, and for the equivariant denoiser the width that matches the default
            transformer's parameter count on this spec (`matched_hidden`).
        layers: equivariant layers or transformer layers (default 4).
        timesteps: T of the DDPM schedule.
        denoiser_kwargs: passed to the denoiser (layer="hnp", chunk=32, heads=8, ...).
    """

    def __init__(
        self,
        spec: WeightSpec,
        denoiser: str = "equivariant",
        *,
        hidden: int | None = None,
        layers: int = 4,
        timesteps: int = 1000,
        **denoiser_kwargs,
    ):
        super().__init__()
        if denoiser not in DENOISERS:
            raise ConfigError(f"unknown denoiser {denoiser!r}; expected one of {sorted(DENOISERS)}")
        if timesteps < 2:
            raise ConfigError(f"timesteps must be >= 2, got {timesteps}")
        if hidden is None:
            hidden = TRANSFORMER_HIDDEN if denoiser == "transformer" else matched_hidden(spec, layers, **denoiser_kwargs)
        self.spec, self.kind, self.timesteps = spec, denoiser, timesteps
        self.settings = {"hidden": hidden, "layers": layers, **denoiser_kwargs}
        self.denoiser = DENOISERS[denoiser](spec, hidden, layers, **denoiser_kwargs)
        self.normalizer = PairNormalizer(spec)
        self.register_buffer("alpha_bar", cosine_alpha_bar(timesteps).float())

    def config(self) -> dict:
        """What `save_generator` stores to rebuild the model (the spec as JSON)."""
        return {"spec": self.spec.to_json(), "denoiser": self.kind, "timesteps": self.timesteps, **self.settings}

    @classmethod
    def from_config(cls, config: Mapping) -> "CheckpointDiffusion":
        """An untrained model of the architecture `config()` described."""
        config = dict(config)
        spec = WeightSpec.from_json(config.pop("spec"))
        return cls(spec, config.pop("denoiser"), **config)

    def fit_normalizer(self, pairs: CheckpointPairs) -> None:
        """Fit the per-tensor statistics on the training pairs (see `PairNormalizer`)."""
        self.normalizer.fit(pairs)

    def predict(self, x_t, start_n, t, start_metric, target_metric) -> dict[str, torch.Tensor]:
        """The denoiser's clean estimate, all in normalized coordinates (t: integer timesteps (B,))."""
        tt = t.to(self.alpha_bar.dtype) / (self.timesteps - 1)
        return self.denoiser(x_t, start_n, tt, self.normalizer.metric_of(start_metric), self.normalizer.metric_of(target_metric))

    def _batch(self, pairs: CheckpointPairs):
        """(normalized update, normalized start, metrics) of `pairs`, on the model's device and dtype."""
        dtype, device = self.alpha_bar.dtype, self.alpha_bar.device
        start = {k: pairs.start[k].to(device, dtype) for k in self.spec.entries}
        target = {k: pairs.target[k].to(device, dtype) for k in self.spec.entries}
        x0 = self.normalizer.update({k: target[k] - start[k] for k in start})
        return x0, self.normalizer.start(start), pairs.start_metric.to(device, dtype), pairs.target_metric.to(device, dtype)

    def loss(self, pairs: CheckpointPairs, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """The DDPM loss on a batch of pairs: mean squared error of the predicted clean update
        over every parameter, t uniform in 0..T−1 (`generator`, on the model's device, fixes t and ε)."""
        if not bool(self.normalizer.fitted):
            raise ConfigError("CheckpointDiffusion.loss: call fit_normalizer(pairs) first (train_generator does)")
        x0, start_n, ms, mt = self._batch(pairs)
        b = ms.shape[0]
        device = ms.device
        t = torch.randint(0, self.timesteps, (b,), device=device, generator=generator)
        noise = {k: torch.randn(v.shape, device=device, dtype=v.dtype, generator=generator) for k, v in x0.items()}
        x_t = {k: add_noise(x0[k], noise[k], self.alpha_bar[t]) for k in x0}
        pred = self.predict(x_t, start_n, t, ms, mt)
        sq = sum(((pred[k] - x0[k]) ** 2).sum() for k in x0)
        return sq / sum(v.numel() for v in x0.values())

    @torch.no_grad()
    def sample(
        self,
        start: Mapping[str, torch.Tensor],
        start_metric: torch.Tensor,
        target_metric: torch.Tensor,
        *,
        steps: int = DEFAULT_STEPS,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Target checkpoints `key -> (B, *shape)` for starts `key -> (B, *shape)` and metrics (B,).

        Deterministic DDIM with `steps` steps from noise drawn with `generator` (on the
        model's device): the same generator state gives the same samples.
        """
        self.spec.check(start, batch_dims=1, where="CheckpointDiffusion.sample start")
        if not bool(self.normalizer.fitted):
            raise ConfigError("CheckpointDiffusion.sample: the model was never fitted (fit_normalizer / train_generator)")
        dtype, device = self.alpha_bar.dtype, self.alpha_bar.device
        s = {k: start[k].to(device, dtype) for k in self.spec.entries}
        b = next(iter(s.values())).shape[0]
        ms, mt = _metric(start_metric, b, "start_metric"), _metric(target_metric, b, "target_metric")
        ms, mt = ms.to(device, dtype), mt.to(device, dtype)
        start_n = self.normalizer.start(s)
        noise = {k: torch.randn(v.shape, device=device, dtype=dtype, generator=generator) for k, v in s.items()}
        x0 = ddim_sample(lambda x, t: self.predict(x, start_n, t, ms, mt), noise, self.alpha_bar, steps)
        delta = self.normalizer.update_inverse(x0)
        return {k: s[k] + delta[k] for k in s}

    def __repr__(self) -> str:
        return f"CheckpointDiffusion({self.denoiser!r}, T={self.timesteps}, {len(self.spec.entries)} entries)"
