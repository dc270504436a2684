"""Weight editors: w -> w + s ⊙ Δ(w), with Δ an equivariant metanetwork or a baseline.

The residual form follows the INR-editing experiments of Zhou et al. (NFN, 2023):
the metanetwork predicts an update of every weight, scaled by a learned scalar per
entry that starts small, so training starts at the unedited INR. Inputs are
standardized by one scalar per entry and the update is rescaled by the entry's
std; scalars per entry commute with every permutation, so an equivariant Δ gives an
equivariant editor.

Δ by name:
    identity     no edit (the baseline every editor must beat)
    flat_mlp     MLP on all weights flattened, outputs every weight's update
    nfn_hnp, unf         `weightspace.nn.EquivariantNetwork` (NFN-HNP / UNF layers)
    nfn_hnp_ff, unf_ff   the same with `FourierFeatures` of each weight in front
    gmn          `weightspace.nn.gmn.GMNEquivariant` on the parameter graph
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from weightspace.errors import EditError
from weightspace.nn import EquivariantNetwork, FlatMLP, FourierFeatures, WeightSpaceBatch
from weightspace.spec import WeightSpec

from .data import EditContext

Weights = dict[str, torch.Tensor]
INIT_SCALE = 1e-2


class EquivariantDelta(nn.Module):
    """Per-weight updates from an NFN/UNF stack, optionally after Fourier features.

    Shapes: `key -> (B, 1, *shape)` to `key -> (B, *shape)`.
    """

    def __init__(self, spec: WeightSpec, layer: str, channels: tuple[int, ...] = (32, 32, 32), fourier: bool = False):
        super().__init__()
        self.encode = FourierFeatures() if fourier else nn.Identity()
        width = self.encode.channels() if fourier else 1
        self.net = EquivariantNetwork(spec, channels, in_channels=width, out_channels=1, layer=layer)

    def forward(self, x: Weights) -> Weights:
        return {k: t[:, 0] for k, t in self.net(self.encode(x)).items()}


class FlatDelta(nn.Module):
    """The flattened-weight baseline: an MLP from all weights to all updates (no symmetry).

    Shapes: `key -> (B, 1, *shape)` to `key -> (B, *shape)`.
    """

    def __init__(self, spec: WeightSpec, hidden: tuple[int, ...] = (256, 256)):
        super().__init__()
        self.shapes = {k: e.shape for k, e in spec.entries.items()}
        self.sizes = [int(torch.Size(s).numel()) for s in self.shapes.values()]
        self.net = FlatMLP(spec, sum(self.sizes), hidden)

    def forward(self, x: Weights) -> Weights:
        flat = self.net(x)
        parts = flat.split(self.sizes, dim=1)
        return {k: p.reshape(p.shape[0], *s) for (k, s), p in zip(self.shapes.items(), parts)}


class GraphDelta(nn.Module):
    """Per-edge (weight) and per-bias updates of a graph metanetwork on the parameter graph.

    Shapes: `key -> (B, 1, *shape)` to `key -> (B, *shape)`.
    """

    def __init__(self, spec: WeightSpec, hidden: int = 32, layers: int = 3, kind: str = "mpnn"):
        super().__init__()
        from weightspace.graph import graph_structure
        from weightspace.nn.gmn import GMNEquivariant, edge_widths

        self.spec = spec
        self.structures = {torch.get_default_dtype(): graph_structure(spec)}
        self.net = GMNEquivariant(hidden, layers, kind, edge_widths=edge_widths(*self.structures.values()))

    def structure(self, dtype: torch.dtype):
        """The parameter-graph structure for values of `dtype` (built once per dtype)."""
        if dtype not in self.structures:
            from weightspace.graph import graph_structure

            self.structures[dtype] = graph_structure(self.spec, dtypes={k: dtype for k in self.spec.entries})
        return self.structures[dtype]

    def forward(self, x: Weights) -> Weights:
        batch = WeightSpaceBatch(self.spec, x)
        return self.net.stacked(batch.graph(self.structure(next(iter(x.values())).dtype)))


class WeightEditor(nn.Module):
    """Edits stacked INRs: w -> w + std · s ⊙ Δ((w - mean) / std), per entry.

    Args:
        context: spec, render grid and the per-entry mean/std of the training INRs.
        delta: maps standardized `key -> (B, 1, *shape)` to updates `key -> (B, *shape)`;
            None is the no-edit baseline.
        init_scale: the starting value of every entry's learned update scale s.

    Shapes: `key -> (B, *shape)` in and out (raw weights, as a zoo stores them).
    """

    def __init__(self, context: EditContext, delta: nn.Module | None, init_scale: float = INIT_SCALE):
        super().__init__()
        self.context, self.delta = context, delta
        self.keys = list(context.spec.entries)
        std = torch.tensor([context.standardize.std[k] for k in self.keys])
        self.register_buffer("std", std, persistent=False)
        self.scale = nn.Parameter(torch.full((len(self.keys),), float(init_scale))) if delta is not None else None

    def update(self, w: Weights) -> Weights:
        """The update w' - w, `key -> (B, *shape)` (zeros for the no-edit baseline)."""
        missing = [k for k in self.keys if k not in w]
        if missing:
            raise EditError(f"the editor needs entries {missing}; got {sorted(w)}")
        if self.delta is None:
            return {k: torch.zeros_like(w[k]) for k in self.keys}
        x = self.context.standardize({k: w[k] for k in self.keys})
        delta = self.delta(x)
        step = (self.std * self.scale).to(next(iter(w.values())).dtype)
        return {k: step[i] * delta[k] for i, k in enumerate(self.keys)}

    def forward(self, w: Weights) -> Weights:
        return {k: w[k] + d for k, d in self.update(w).items()}

    def __repr__(self) -> str:
        inner = "identity" if self.delta is None else type(self.delta).__name__
        return f"WeightEditor({inner}, edit={self.context.edit!r}, {len(self.keys)} entries)"


@dataclass(frozen=True)
class EditorChoice:
    """An editor of the comparison: its Δ builder and training defaults."""

    name: str
    delta: Callable[[WeightSpec], nn.Module | None]
    lr: float = 1e-3
    epochs: int = 30

    @property
    def trainable(self) -> bool:
        return self.name != "identity"


EDITORS = {c.name: c for c in [
    EditorChoice("identity", lambda s: None, epochs=0),
    EditorChoice("flat_mlp", lambda s: FlatDelta(s)),
    EditorChoice("nfn_hnp", lambda s: EquivariantDelta(s, "hnp")),
    EditorChoice("nfn_hnp_ff", lambda s: EquivariantDelta(s, "hnp", fourier=True)),
    EditorChoice("unf", lambda s: EquivariantDelta(s, "unf")),
    EditorChoice("unf_ff", lambda s: EquivariantDelta(s, "unf", fourier=True)),
    EditorChoice("gmn", lambda s: GraphDelta(s), lr=1e-3, epochs=10),
]}

DEFAULT = ("identity", "flat_mlp", "nfn_hnp_ff", "gmn")


def build_editor(name: str, context: EditContext) -> WeightEditor:
    """The editor `name` (see the module doc) for `context`."""
    if name not in EDITORS:
        raise EditError(f"unknown editor {name!r}; choose from {sorted(EDITORS)}")
    return WeightEditor(context, EDITORS[name].delta(context.spec))


def editor_config(name: str, context: EditContext) -> dict:
    """The JSON config that `editor_from_config` rebuilds the editor from."""
    return {"task": "inr-edit", "model": name, **context.to_config()}


def editor_from_config(config: dict) -> WeightEditor:
    return build_editor(str(config["model"]), EditContext.from_config(config))
