"""The models the INR comparison can train, by name: what each reads and how it is built."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from weightspace.nn import FlatMLP, FourierFeatures, InvariantClassifier, StatMLP
from weightspace.nn.models import mlp
from weightspace.spec import WeightSpec


@dataclass(frozen=True)
class Choice:
    """A model of the comparison: its input ("weights" or rendered "pixels"), its
    builder (spec, classes, pixels) -> module, and its optimization defaults."""

    name: str
    reads: str
    build: Callable[[WeightSpec, int, int], nn.Module]
    lr: float = 1e-3
    epochs: int = 40
    augment: str = "none"


class PixelMLP(nn.Module):
    """The reconstruction bound: an MLP on the image rendered from each INR."""

    def __init__(self, pixels: int, classes: int):
        super().__init__()
        self.net = mlp(pixels, (256, 256), classes, dropout=0.1)

    def forward(self, w):
        return self.net(w["pixels"].squeeze(1))


def fourier_classifier(spec: WeightSpec, classes: int, layer: str) -> nn.Module:
    """Fourier features of each weight, then an invariant NFN/UNF classifier."""
    enc = FourierFeatures()
    return nn.Sequential(enc, InvariantClassifier(spec, classes, (32, 32, 32), in_channels=enc.channels(), layer=layer))


CHOICES = {c.name: c for c in [
    Choice("flat_mlp", "weights", lambda s, k, p: FlatMLP(s, k, dropout=0.1)),
    Choice("flat_mlp_aug", "weights", lambda s, k, p: FlatMLP(s, k, dropout=0.1), augment="symmetry"),
    Choice("stats", "weights", lambda s, k, p: StatMLP(s, k)),
    Choice("nfn_np", "weights", lambda s, k, p: InvariantClassifier(s, k, (32, 32, 32), layer="np"), lr=3e-3),
    Choice("nfn_hnp", "weights", lambda s, k, p: InvariantClassifier(s, k, (32, 32, 32), layer="hnp"), lr=3e-3),
    Choice("unf", "weights", lambda s, k, p: InvariantClassifier(s, k, (32, 32, 32), layer="unf"), lr=3e-3),
    Choice("nfn_hnp_ff", "weights", lambda s, k, p: fourier_classifier(s, k, "hnp"), lr=3e-3),
    Choice("unf_ff", "weights", lambda s, k, p: fourier_classifier(s, k, "unf"), lr=3e-3),
    Choice("recon_mlp", "pixels", lambda s, k, p: PixelMLP(p, k)),
]}

DEFAULT = ("flat_mlp", "stats", "nfn_hnp_ff", "recon_mlp")
