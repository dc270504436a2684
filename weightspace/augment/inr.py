"""INR input-space transforms done exactly in weight space.

An INR f maps coordinates to values; the image moved by a map is J(x) = f(A x + t),
where (A, t) maps each output coordinate to where it samples the original. Only the
first layer sees x, so J is an INR of the same architecture with
W' = W A and b' = b + W t: no refitting, no interpolation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import ConfigError, SpecError
from ..spec import WeightSpec
from .base import StateDict, Transform, batch_shape


def first_layer(spec: WeightSpec, dims: int | None = None) -> tuple[str, str | None]:
    """The (weight, bias) keys of the layer that reads the INR's coordinates.

    The weight is the 2-D parameter whose input axis is fixed (coordinates are model
    inputs) and, if `dims` is given, of that size; it must be unique. The bias is the
    1-D parameter sharing its output group, if any.
    """
    candidates = [
        e for e in spec.entries.values()
        if len(e.shape) == 2 and not e.buffer and all(f.group is None for f in e.axes[1])
        and any(f.group is not None for f in e.axes[0]) and (dims is None or e.shape[1] == dims)
    ]
    if len(candidates) != 1:
        found = [e.key for e in candidates]
        raise SpecError(f"cannot tell the INR's first layer from the spec (candidates: {found}); "
                         "pass weight_key/bias_key")
    weight = candidates[0]
    groups = {f.group for f in weight.axes[0]}
    biases = [e.key for e in spec.entries.values()
              if len(e.shape) == 1 and not e.buffer and {f.group for f in e.axes[0]} == groups]
    return weight.key, biases[0] if len(biases) == 1 else None


def apply_input_map(sd: StateDict, A: torch.Tensor, t: torch.Tensor, weight_key: str,
                    bias_key: str | None) -> dict[str, torch.Tensor]:
    """J(x) = f(A x + t) for the INR `sd`: W' = W A, b' = b + W t (A: (…, d, d), t: (…, d))."""
    out = dict(sd)
    W = sd[weight_key]
    A = A.to(W.device, W.dtype)
    t = t.to(W.device, W.dtype)
    out[weight_key] = W @ A
    if bias_key is not None:
        shift = (W @ t.unsqueeze(-1)).squeeze(-1)
        out[bias_key] = sd[bias_key] + shift
    elif bool((t != 0).any()):
        raise SpecError(f"{weight_key} has no bias: the INR cannot be translated in weight space")
    return out


@dataclass
class RandomInputAffine(Transform):
    """Random translation, rotation, isotropic scaling and flips of an INR's input space.

    Parameters follow the image: `translate` moves content by up to that amount per
    axis (in the INR's coordinate units), `degrees` rotates it (2-D only, counter-
    clockwise in the INR's coordinate order), `scale` zooms by a factor drawn
    log-uniformly from the range, and each axis in `flip` is mirrored with probability
    `flip_p`. The map for the content is x -> S R x + δ; the INR is resampled with
    its inverse, so the transformed INR renders the transformed image exactly.
    """

    spec: WeightSpec
    translate: float = 0.0
    degrees: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    flip: Sequence[int] = ()
    flip_p: float = 0.5
    weight_key: str | None = None
    bias_key: str | None = None

    preserves_function = False

    def __post_init__(self) -> None:
        if self.weight_key is None:
            self.weight_key, found_bias = first_layer(self.spec)
            self.bias_key = self.bias_key or found_bias
        self.dims = self.spec.entry(self.weight_key).shape[1]
        if self.degrees and self.dims != 2:
            raise ConfigError(f"rotation needs 2-D coordinates; {self.weight_key} reads {self.dims}")
        if any(not 0 <= a < self.dims for a in self.flip):
            raise ConfigError(f"flip axes {tuple(self.flip)} out of range for {self.dims}-D coordinates")

    def sample(self, lead: tuple[int, ...], generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The content maps (M, δ) per sample: x -> M x + δ."""
        d = self.dims
        shape = lead or ()
        u = lambda *s: torch.rand((*shape, *s), generator=generator, dtype=torch.float64)  # noqa: E731
        delta = (2 * u(d) - 1) * self.translate
        lo, hi = math.log(self.scale[0]), math.log(self.scale[1])
        s = torch.exp(lo + (hi - lo) * u())
        M = torch.eye(d, dtype=torch.float64).expand(*shape, d, d) * s[..., None, None]
        if d == 2:
            theta = (2 * u() - 1) * math.radians(self.degrees)
            c, si = torch.cos(theta), torch.sin(theta)
            R = torch.stack([torch.stack([c, -si], -1), torch.stack([si, c], -1)], -2)
            M = M @ R
        if self.flip:
            mirror = torch.ones(*shape, d, dtype=torch.float64)
            for axis in self.flip:
                mirror[..., axis] = torch.where(u() < self.flip_p, -1.0, 1.0)
            M = M @ torch.diag_embed(mirror)
        return M, delta

    def apply(self, sd: StateDict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        lead = batch_shape(self.spec, sd)
        M, delta = self.sample(lead, generator)
        A = torch.linalg.inv(M)
        t = -(A @ delta.unsqueeze(-1)).squeeze(-1)
        return apply_input_map(sd, A, t, self.weight_key, self.bias_key)
