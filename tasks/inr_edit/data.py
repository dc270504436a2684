"""INR editing pairs: each INR of a zoo with the edited version of its signal.

The edits follow the metanetwork papers (Zhou et al., NFN, 2023: dilation of MNIST
digits, contrast on CIFAR): an image operation applied to the signal the INR was
fitted to, on the zoo's own grid. The editor must output weights whose render on
that grid matches the edited image.

    pairs = EditPairs.load("/tmp/zoo", edit="dilate")
    pairs.splits["train"].weights   # key -> (N, *shape) INR weights
    pairs.splits["train"].targets   # (N, P) edited images, row-major like the grid
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from tasks.inr_classify.data import InrSplits, Standardize, grid_coords
from tasks.training import WeightData
from weightspace.errors import EditError
from weightspace.spec import WeightSpec
from zoo import SirenConfig, Zoo
from zoo.siren import forward as siren_forward
from zoo.datasets import load_dataset

SPLITS = ("train", "val", "test")
BLUR_SIGMA = 1.0
CONTRAST_GAIN = 2.0


def _as_channels(images: torch.Tensor) -> torch.Tensor:
    """(N, *grid) with a 1-D or 2-D grid as (N, 1, *grid)."""
    if images.dim() not in (2, 3):
        raise EditError(f"edits need images of shape (N, L) or (N, H, W), got {tuple(images.shape)}")
    return images.unsqueeze(1)


def dilate(images: torch.Tensor) -> torch.Tensor:
    """Grey dilation with a 3 (x 3) window: the max over each pixel's neighbourhood
    (as scipy.ndimage.grey_dilation(size=3), edges not padded with bright values)."""
    x = _as_channels(images)
    pool = F.max_pool1d if x.dim() == 3 else F.max_pool2d
    return pool(x, kernel_size=3, stride=1, padding=1).squeeze(1)


def blur(images: torch.Tensor, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Gaussian blur, separable, radius ⌈2σ⌉, edges reflected."""
    x = _as_channels(images)
    radius = max(1, math.ceil(2 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    for axis in range(2, x.dim()):
        shape = [1, 1] + [1] * (x.dim() - 2)
        shape[axis] = kernel.numel()
        pad = [0, 0] * (x.dim() - 2)
        pad[2 * (x.dim() - 1 - axis)] = pad[2 * (x.dim() - 1 - axis) + 1] = radius
        padded = F.pad(x, pad, mode="reflect")
        conv = F.conv1d if x.dim() == 3 else F.conv2d
        x = conv(padded, kernel.view(shape))
    return x.squeeze(1)


def contrast(images: torch.Tensor, gain: float = CONTRAST_GAIN) -> torch.Tensor:
    """Stretch each image about its own mean by `gain`, clipped to the value range [-1, 1]."""
    flat = images.reshape(images.shape[0], -1)
    mean = flat.mean(1).view(-1, *([1] * (images.dim() - 1)))
    return (mean + gain * (images - mean)).clamp(-1.0, 1.0)


EDITS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"dilate": dilate, "blur": blur, "contrast": contrast}


def apply_edit(name: str, images: torch.Tensor) -> torch.Tensor:
    """The edit `name` of images (N, *grid)."""
    if name not in EDITS:
        raise EditError(f"unknown edit {name!r}; choose from {sorted(EDITS)}")
    return EDITS[name](images)


@dataclass
class EditContext:
    """What rebuilds and feeds an editor without the data: the spec it edits, the
    SIREN architecture and grid it renders on, the edit, and the input scaling."""

    spec: WeightSpec
    siren: SirenConfig
    grid: tuple[int, ...]
    edit: str
    standardize: Standardize

    @property
    def coords(self) -> torch.Tensor:
        return grid_coords(self.grid)

    def render(self, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        """(N, P) values of stacked INRs on the grid; differentiable."""
        coords = self.coords.to(next(iter(weights.values())))
        return siren_forward(self.siren, weights, coords)[..., 0]

    def to_config(self) -> dict:
        return {"spec": self.spec.to_dict(), "siren": self.siren.to_dict(), "grid": list(self.grid), "edit": self.edit,
                "standardize": {"mean": self.standardize.mean, "std": self.standardize.std}}

    @classmethod
    def from_config(cls, config: dict) -> "EditContext":
        st = config["standardize"]
        return cls(WeightSpec.from_dict(config["spec"]), SirenConfig.from_dict(config["siren"]), tuple(config["grid"]),
                   str(config["edit"]), Standardize(dict(st["mean"]), dict(st["std"])))


@dataclass
class EditPairs:
    """Train/val/test splits of (INR weights, edited target image) and their context.

    `source` says what was edited: "signal" (the image the INR was fitted to, as in
    the papers) or "render" (the INR's own render, so fitting error does not count).
    """

    context: EditContext
    splits: dict[str, WeightData]
    source: str
    dataset: str

    @property
    def spec(self) -> WeightSpec:
        return self.context.spec

    @classmethod
    def load(cls, root: Path, edit: str = "dilate", source: str = "signal", limit: int | None = None) -> "EditPairs":
        """Pairs from the INR zoo in `root`; `limit` keeps the first N of each split."""
        if edit not in EDITS:
            raise EditError(f"unknown edit {edit!r}; choose from {sorted(EDITS)}")
        if source not in ("signal", "render"):
            raise EditError(f"source must be 'signal' or 'render', got {source!r}")
        inr = InrSplits.load(root)
        z = Zoo(root)
        samples = torch.as_tensor(z.column("networks", "sample"))
        signals = load_dataset(inr.dataset, z.manifest["recipe"].get("upsample"))
        splits = {}
        for name in SPLITS:
            idx = torch.as_tensor(z.indices(name))[:limit]
            weights = {k: v[: len(idx)] for k, v in inr.splits[name].weights.items()}
            if source == "signal":
                images = signals.values[samples[idx]]
            else:
                images = inr.renders[name].weights["pixels"][: len(idx)].reshape(len(idx), *inr.grid)
            target = apply_edit(edit, images).reshape(len(idx), -1)
            splits[name] = WeightData(weights, target)
        context = EditContext(inr.spec, inr.siren, inr.grid, edit, Standardize.fit(splits["train"]))
        return cls(context, splits, source, inr.dataset)
