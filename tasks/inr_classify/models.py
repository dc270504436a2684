"""The models the INR comparison can train, by name: what each reads, how it is
built, and how a batch of weights becomes its input. Builders and `prepare` take an
`InrSplits` while training and an `InrContext` when a saved model is rebuilt: both
carry spec, num_classes, siren, pixels and standardize."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from weightspace.errors import ConfigError
from weightspace.nn import (
    CanonicalInvariant, FlatMLP, FourierFeatures, InvariantClassifier, StatMLP, WeightSpaceBatch,
)
from weightspace.nn.models import mlp

from .data import InrSplits


MAX_PROBES = 784
"""Most probes of `gmn_probe`: every pixel of 8×8 digits and of 28×28 MNIST (measured on the
main job: 784 probes cost ≈ 23% more per epoch than 196 and read the whole image)."""

READS = ("weights", "probes", "pixels")
"""What a model reads of an INR: its weights only (never runs it), the INR run on
(learned) probe inputs, or the image rendered from it."""


@dataclass(frozen=True)
class Choice:
    """A model of the comparison: what it reads (one of `READS`), its builder, the
    function that turns a batch into its input, and its training defaults (epochs, lr,
    augmentation recipe, label smoothing of the loss)."""

    name: str
    reads: str
    build: Callable[[InrSplits], nn.Module]
    prepare: Callable[[InrSplits], Callable] = lambda data: data.standardize
    lr: float = 1e-3
    epochs: int = 40
    augment: str = "none"
    label_smoothing: float = 0.0

    def __post_init__(self):
        if self.reads not in READS:
            raise ConfigError(f"model {self.name!r} reads {self.reads!r}; expected one of {READS}")


class PixelMLP(nn.Module):
    """The reconstruction bound: an MLP on the image rendered from each INR."""

    def __init__(self, pixels: int, classes: int):
        super().__init__()
        self.net = mlp(pixels, (256, 256), classes, dropout=0.1)

    def forward(self, w):
        return self.net(w["pixels"])


def fourier_classifier(data: InrSplits, layer: str) -> nn.Module:
    """Fourier features of each weight, then an invariant NFN/UNF classifier."""
    enc = FourierFeatures()
    return nn.Sequential(enc, InvariantClassifier(data.spec, data.num_classes, (32, 32, 32),
                                                  in_channels=enc.channels(), layer=layer))


def canonical_classifier(data: InrSplits, layer: str) -> nn.Module:
    """The sign-invariant NFN/UNF: each hidden unit's sign canonicalized (from the spec's
    extra symmetries), then Fourier features and an invariant classifier."""
    enc = FourierFeatures()
    return CanonicalInvariant(data.spec, nn.Sequential(enc, InvariantClassifier(
        data.spec, data.num_classes, (32, 32, 32), in_channels=enc.channels(), layer=layer)))


def _scaled(data: InrSplits) -> Callable:
    """Each entry divided by its training std, not centred: a positive scalar per entry
    commutes with the sign/scale action, so the canonicalization after it stays exact."""
    std = data.standardize.std
    return lambda w: {k: (v / std[k]).unsqueeze(1) for k, v in w.items()}


def _structure(data: InrSplits):
    from weightspace.graph import graph_structure

    return graph_structure(data.spec)


def probe_grid(grid: tuple[int, ...], max_probes: int) -> torch.Tensor:
    """Coordinates of every s-th pixel of `grid` (centred), s the smallest stride per
    axis that keeps at most `max_probes` probes: the whole grid when it is small."""
    from zoo.datasets import grid_coords

    stride = 1
    while math.prod(-(-n // stride) for n in grid) > max_probes:
        stride += 1
    keep = [torch.arange(min(stride // 2, n - 1), n, stride) for n in grid]
    index = torch.cartesian_prod(*keep).reshape(-1, len(grid))
    flat = sum(index[:, a] * math.prod(grid[a + 1:]) for a in range(len(grid)))
    return grid_coords(grid)[flat]


def gmn_probe(data: InrSplits, grid_init: bool = True, max_probes: int = MAX_PROBES) -> nn.Module:
    """Graph metanetwork with probe features: each unit's pre-activation on learned
    inputs as node features, and the INR's output at the probes read by the readout.
    Probes on the signal grid (every pixel, or every s-th one of a grid with more than
    `max_probes` pixels), starting at those pixel coordinates (`grid_init`) or uniformly
    at random in [-1, 1]^d."""
    from weightspace.examples import siren
    from weightspace.nn.gmn import GMNClassifier, ProbeFeatures

    template = siren(data.siren.widths, data.siren.w0)
    coords = probe_grid(data.grid, max_probes)
    probes = ProbeFeatures(template, _structure(data), (data.siren.widths[0],), hidden=16,
                           num_probes=coords.shape[0], init=coords if grid_init else None)
    return GMNClassifier(data.num_classes, hidden=16, layers=2, edge_widths=(1,), probes=[probes], read_probes=True)


def graph_batches(data: InrSplits) -> Callable:
    structure = _structure(data)
    return lambda w: WeightSpaceBatch.from_stacked(structure.spec, w).graph(structure)


def scaled_graph_batches(data: InrSplits) -> Callable:
    """Graph batches of weights divided by their entry's training std (not centred: a positive
    number per entry commutes with signs and scales, so ScaleGMN's symmetry stays exact)."""
    structure, std = _structure(data), data.standardize.std
    return lambda w: WeightSpaceBatch.from_stacked(structure.spec, {k: v / std[k] for k, v in w.items()}).graph(
        structure)


def scale_gmn(data: InrSplits) -> nn.Module:
    """ScaleGMN: message passing equivariant to permutations and the spec's sign flips, weights only."""
    from weightspace.nn.gmn import ScaleGMNClassifier, edge_widths

    return ScaleGMNClassifier(data.num_classes, hidden=16, layers=3, edge_widths=edge_widths(_structure(data)))


def _pixels(data: InrSplits) -> Callable:
    return lambda w: w


CHOICES = {c.name: c for c in [
    Choice("flat_mlp", "weights", lambda d: FlatMLP(d.spec, d.num_classes, dropout=0.1)),
    Choice("flat_mlp_aug", "weights", lambda d: FlatMLP(d.spec, d.num_classes, dropout=0.1), augment="symmetry"),
    Choice("stats", "weights", lambda d: StatMLP(d.spec, d.num_classes)),
    Choice("nfn_np", "weights", lambda d: InvariantClassifier(d.spec, d.num_classes, (32, 32, 32), layer="np"), lr=3e-3),
    Choice("nfn_hnp", "weights", lambda d: InvariantClassifier(d.spec, d.num_classes, (32, 32, 32), layer="hnp"), lr=3e-3),
    Choice("unf", "weights", lambda d: InvariantClassifier(d.spec, d.num_classes, (32, 32, 32), layer="unf"), lr=3e-3),
    Choice("nfn_hnp_ff", "weights", lambda d: fourier_classifier(d, "hnp"), lr=3e-3, epochs=10),
    Choice("unf_ff", "weights", lambda d: fourier_classifier(d, "unf"), lr=3e-3),
    Choice("canon_hnp_ff", "weights", lambda d: canonical_classifier(d, "hnp"), prepare=_scaled, lr=3e-3, epochs=20),
    Choice("scale_gmn", "weights", scale_gmn, prepare=scaled_graph_batches, lr=3e-3, epochs=5),
    Choice("gmn_probe", "probes", gmn_probe, prepare=graph_batches, lr=3e-3, epochs=8, augment="affine",
           label_smoothing=0.1),
    Choice("gmn_probe_rand", "probes", lambda d: gmn_probe(d, grid_init=False), prepare=graph_batches, lr=3e-3,
           epochs=10),
    Choice("recon_mlp", "pixels", lambda d: PixelMLP(d.pixels, d.num_classes), prepare=_pixels),
]}

DEFAULT = ("flat_mlp", "stats", "canon_hnp_ff", "gmn_probe", "recon_mlp")
