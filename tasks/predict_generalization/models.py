"""The regressors the comparison can train, by name: how each is built from the zoo,
how a batch of stacked weights becomes its input, and its default budget."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from tasks.inr_classify.data import Standardize
from weightspace.nn import FlatMLP, FourierFeatures, InvariantClassifier, StatMLP, WeightSpaceBatch

from .data import GeneralizationData


@dataclass(frozen=True)
class Choice:
    """A model of the comparison: builder, input preparation, learning rate and epochs."""

    name: str
    build: Callable[[GeneralizationData], nn.Module]
    prepare: Callable[[GeneralizationData], Callable] = lambda data: Standardize.fit(data.splits["train"])
    lr: float = 1e-3
    epochs: int = 60
    batch_size: int = 32
    about: str = ""


def invariant(data: GeneralizationData, layer: str, fourier: bool = False) -> nn.Module:
    """NFN (layer "np"/"hnp") or UNF ("unf") regressor, optionally on Fourier features."""
    enc = FourierFeatures() if fourier else None
    body = InvariantClassifier(data.spec, 1, (16, 16), in_channels=enc.channels() if enc else 1,
                               hidden=(64,), layer=layer, dropout=0.1)
    return nn.Sequential(enc, body) if enc else body


def _structure(data: GeneralizationData):
    from weightspace.graph import graph_structure

    return graph_structure(data.spec)


def gmn(data: GeneralizationData) -> nn.Module:
    """Graph metanetwork (edge-updating MPNN) with an invariant readout."""
    from weightspace.nn.gmn import GMNClassifier, edge_widths

    return GMNClassifier(1, hidden=16, layers=2, edge_widths=edge_widths(_structure(data)))


def graph_batches(data: GeneralizationData) -> Callable:
    """Stacked raw weights -> their parameter graphs (the GMN's own encoders scale values)."""
    structure = _structure(data)
    return lambda w: WeightSpaceBatch.from_stacked(structure.spec, w).graph(structure)


CHOICES = {c.name: c for c in [
    Choice("stats", lambda d: StatMLP(d.spec, 1, dropout=0.1), epochs=150, batch_size=64,
           about="per-tensor mean/var/quantiles + MLP (Unterthiner et al.)"),
    Choice("flat_mlp", lambda d: FlatMLP(d.spec, 1, dropout=0.1), epochs=150, batch_size=64,
           about="MLP on flattened weights (ignores the symmetry)"),
    Choice("nfn_np", lambda d: invariant(d, "np"), lr=1e-3, epochs=40, about="NFN-NP invariant regressor"),
    Choice("nfn_hnp", lambda d: invariant(d, "hnp"), lr=1e-3, epochs=40, about="NFN-HNP invariant regressor"),
    Choice("unf", lambda d: invariant(d, "unf"), lr=1e-3, epochs=40, about="UNF invariant regressor"),
    Choice("nfn_hnp_ff", lambda d: invariant(d, "hnp", fourier=True), lr=1e-3, epochs=40,
           about="NFN-HNP on Fourier features of each weight"),
    Choice("gmn", gmn, prepare=graph_batches, lr=1e-3, epochs=30, about="graph metanetwork (MPNN)"),
]}

DEFAULT = ("stats", "flat_mlp", "nfn_hnp", "nfn_hnp_ff", "gmn")
