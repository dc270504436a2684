"""Stacked small classifiers (CNN or MLP): N networks of one architecture, one forward.

The CNN follows the Small CNN Zoo (Unterthiner et al., 2020): three 3×3 convs with
ReLU (strides 1, 2, 2), global average pooling and a linear head; the MLP has two
ReLU hidden layers. Convs of N networks run as one grouped convolution and linears
as one `baddbmm`. Keys match `ClassifierConfig.module()`, an `nn.Sequential`, so a
stored network loads into it. Hidden widths below the maximum are realised by a
unit mask: masked units have zero weights in and out, so the stored max-width
network computes exactly the narrow one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from weightspace.errors import ZooError

ARCHS = ("cnn", "mlp")


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture: 'cnn' or 'mlp', input shape (C, *grid), maximum hidden width, classes."""

    arch: str
    in_shape: tuple[int, ...]
    width: int = 16
    classes: int = 10

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ZooError(f"unknown classifier architecture {self.arch!r}; expected one of {ARCHS}")
        if self.arch == "cnn" and len(self.in_shape) not in (2, 3):
            raise ZooError(f"a CNN needs 1-D or 2-D inputs (C, L) / (C, H, W), got {self.in_shape}")
        object.__setattr__(self, "in_shape", tuple(int(s) for s in self.in_shape))

    @property
    def layers(self) -> list[tuple[str, str]]:
        """(module index, kind) of each weighted layer, kind 'conv' or 'linear'."""
        if self.arch == "cnn":
            return [("0", "conv"), ("2", "conv"), ("4", "conv"), ("8", "linear")]
        return [("1", "linear"), ("3", "linear"), ("5", "linear")]

    @property
    def keys(self) -> list[str]:
        return [f"{i}.{leaf}" for i, _ in self.layers for leaf in ("weight", "bias")]

    def module(self) -> nn.Sequential:
        """The equivalent `nn.Sequential` (eval-mode function of a stored network)."""
        c, w, k = self.in_shape[0], self.width, self.classes
        if self.arch == "mlp":
            return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(self.in_shape), w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, k))
        conv = nn.Conv1d if len(self.in_shape) == 2 else nn.Conv2d
        pool = nn.AdaptiveAvgPool1d(1) if len(self.in_shape) == 2 else nn.AdaptiveAvgPool2d(1)
        return nn.Sequential(
            conv(c, w, 3, padding=1), nn.ReLU(), conv(w, w, 3, stride=2, padding=1), nn.ReLU(),
            conv(w, w, 3, stride=2, padding=1), nn.ReLU(), pool, nn.Flatten(), nn.Linear(w, k),
        )

    def to_dict(self) -> dict:
        return {"type": "classifier", "arch": self.arch, "in_shape": list(self.in_shape), "width": self.width, "classes": self.classes}

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifierConfig":
        return cls(d["arch"], tuple(d["in_shape"]), int(d["width"]), int(d["classes"]))


def init_one(cfg: ClassifierConfig, generator: torch.Generator, scale: float = 1.0) -> dict[str, torch.Tensor]:
    """nn.Conv/nn.Linear default init (U(±1/√fan_in)) times `scale`, from `generator`."""
    shapes = {k: tuple(p.shape) for k, p in cfg.module().state_dict().items()}
    out = {}
    for i, _ in cfg.layers:
        w_shape = shapes[f"{i}.weight"]
        bound = scale / math.sqrt(math.prod(w_shape[1:]))
        out[f"{i}.weight"] = (torch.rand(w_shape, generator=generator) * 2 - 1) * bound
        out[f"{i}.bias"] = (torch.rand(shapes[f"{i}.bias"], generator=generator) * 2 - 1) * bound
    return out


def unit_masks(cfg: ClassifierConfig, widths: torch.Tensor) -> torch.Tensor:
    """(N, width) 0/1 masks keeping each network's first `widths[n]` hidden units."""
    return (torch.arange(cfg.width) < widths.unsqueeze(1)).float()


def mask_weights(cfg: ClassifierConfig, params: dict[str, torch.Tensor], mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Zero every weight into and out of masked hidden units (new tensors)."""
    out = dict(params)
    last = len(cfg.layers) - 1
    for n, (i, _) in enumerate(cfg.layers):
        w = params[f"{i}.weight"]
        if n < last:
            out[f"{i}.weight"] = w * mask.reshape(*mask.shape, *([1] * (w.dim() - 2)))
            out[f"{i}.bias"] = params[f"{i}.bias"] * mask
        if n > 0:
            out[f"{i}.weight"] = out[f"{i}.weight"] * mask.reshape(mask.shape[0], 1, -1, *([1] * (w.dim() - 3)))
    return out


def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, stride: int) -> torch.Tensor:
    """N grouped convolutions: x (N, B, C, *grid), w (N, O, C, *k) -> (N, B, O, *grid')."""
    n, batch, c = x.shape[:3]
    grid = x.shape[3:]
    xg = x.transpose(0, 1).reshape(batch, n * c, *grid)
    wg = w.reshape(n * w.shape[1], *w.shape[2:])
    conv = F.conv1d if len(grid) == 1 else F.conv2d
    y = conv(xg, wg, b.reshape(-1), stride=stride, padding=1, groups=n)
    return y.reshape(batch, n, w.shape[1], *y.shape[2:]).transpose(0, 1)


def forward(
    cfg: ClassifierConfig,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Logits of N stacked networks.

    Shapes:
        x: (N, B, *in_shape) per-network inputs, or (B, *in_shape) shared.
        mask: (N, width) hidden-unit masks; dropout: per hidden layer (N, B, width)
            multipliers (already divided by the keep probability), or None in eval.
        returns: (N, B, classes).
    """
    n = params[cfg.keys[0]].shape[0]
    h = x if x.dim() == len(cfg.in_shape) + 2 else x.unsqueeze(0).expand(n, *x.shape)
    last = len(cfg.layers) - 1
    for layer, (i, kind) in enumerate(cfg.layers):
        w, b = params[f"{i}.weight"], params[f"{i}.bias"]
        if kind == "conv":
            h = _conv(h, w, b, stride=1 if layer == 0 else 2)
        else:
            if h.dim() > 3:
                h = h.mean(dim=tuple(range(3, h.dim()))) if cfg.arch == "cnn" else h.flatten(2)
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        if layer == last:
            break
        h = torch.relu(h)
        extra = (1,) * (h.dim() - 3)
        if mask is not None:
            h = h * mask.reshape(n, 1, -1, *extra)
        if dropout is not None:
            h = h * dropout[layer].reshape(*dropout[layer].shape, *extra)
    return h
