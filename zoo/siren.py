"""Stacked SIRENs (Sitzmann et al., 2020, "Implicit Neural Representations with
Periodic Activation Functions"): N networks of one architecture evaluated at once.

Weights live in a dict of stacked tensors keyed like `weightspace.examples.siren`
(`0.weight`, `0.bias`, `2.weight`, … with a leading network dim), so any stored
INR loads into that `nn.Sequential` unchanged. The forward pass is one batched
matmul per layer (`torch.baddbmm`), no Python loop over networks.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from weightspace.errors import ZooError

FIRST_LAYER_INITS = ("siren", "torch")


@dataclass(frozen=True)
class SirenConfig:
    """Architecture of a SIREN: widths (in, hidden…, out), frequency ω0, first-layer init.

    first_init "siren" draws the first layer's weights from U(-1/in, 1/in) as the
    paper does; "torch" uses nn.Linear's default U(-1/√in, 1/√in). Hidden and output
    weights follow the paper, U(-√(6/in)/ω0, √(6/in)/ω0); biases nn.Linear's default.
    """

    widths: tuple[int, ...] = (2, 32, 32, 1)
    w0: float = 30.0
    first_init: str = "siren"

    def __post_init__(self):
        if len(self.widths) < 2 or any(int(w) < 1 for w in self.widths):
            raise ZooError(f"SIREN widths must be at least (in, out) of positive ints, got {self.widths}")
        if self.first_init not in FIRST_LAYER_INITS:
            raise ZooError(f"unknown first-layer init {self.first_init!r}; expected one of {FIRST_LAYER_INITS}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))

    @property
    def keys(self) -> list[str]:
        """State-dict keys in layer order (Linear modules sit at even Sequential indices)."""
        return [f"{2 * i}.{leaf}" for i in range(len(self.widths) - 1) for leaf in ("weight", "bias")]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        out = {}
        for i, (a, b) in enumerate(zip(self.widths[:-1], self.widths[1:])):
            out[f"{2 * i}.weight"] = (b, a)
            out[f"{2 * i}.bias"] = (b,)
        return out

    def to_dict(self) -> dict:
        return {"type": "siren", **asdict(self), "widths": list(self.widths)}

    @classmethod
    def from_dict(cls, d: dict) -> "SirenConfig":
        return cls(tuple(d["widths"]), float(d["w0"]), d.get("first_init", "siren"))

    def module(self) -> torch.nn.Sequential:
        """The equivalent `nn.Sequential` (for tracing a spec, or using one stored INR)."""
        from weightspace.examples import siren

        return siren(self.widths, self.w0)


def init_one(cfg: SirenConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One SIREN's initial weights drawn from `generator` (unstacked)."""
    out = {}
    for i, (a, b) in enumerate(zip(cfg.widths[:-1], cfg.widths[1:])):
        if i == 0:
            bound = 1.0 / a if cfg.first_init == "siren" else 1.0 / math.sqrt(a)
        else:
            bound = math.sqrt(6.0 / a) / cfg.w0
        out[f"{2 * i}.weight"] = (torch.rand(b, a, generator=generator) * 2 - 1) * bound
        out[f"{2 * i}.bias"] = (torch.rand(b, generator=generator) * 2 - 1) / math.sqrt(a)
    return out


def init_stack(cfg: SirenConfig, seeds: list[int]) -> dict[str, torch.Tensor]:
    """Stacked initial weights, network i drawn from a generator seeded with seeds[i].

    Each network's init depends on its own seed only, so any chunking of a zoo
    gives the same weights.
    """
    inits = [init_one(cfg, torch.Generator().manual_seed(int(s))) for s in seeds]
    return {k: torch.stack([w[k] for w in inits]) for k in cfg.keys}


def forward(cfg: SirenConfig, params: dict[str, torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
    """Evaluate N stacked SIRENs.

    Shapes:
        params: key -> (N, out, in) weights and (N, out) biases.
        coords: (P, in) shared by every network, or (N, P, in).
        returns: (N, P, out).
    """
    n = params[cfg.keys[0]].shape[0]
    h = coords if coords.dim() == 3 else coords.unsqueeze(0).expand(n, *coords.shape)
    last = len(cfg.widths) - 2
    for i in range(len(cfg.widths) - 1):
        w, b = params[f"{2 * i}.weight"], params[f"{2 * i}.bias"]
        if i < last:  # sin(ω0·(xWᵀ + b)), the ω0 product folded into baddbmm's alpha/beta
            h = torch.sin(torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2), beta=cfg.w0, alpha=cfg.w0))
        else:
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
    return h
