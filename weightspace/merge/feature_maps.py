"""Merge/unmerge matrices per group, applied on the spec's axes: the frame of ZipIt! and CCA merging.

Stack the K models' units of a group side by side (K·n features). A merge matrix M
(n_out × K·n) makes the merged units from the stacked ones, an unmerge matrix U
(K·n × n_out) says how each model's units are read back from the merged ones
(M U = I). Every state-dict entry is a multilinear map of the units on its axes, so
the merged entry is Σ_k (entry of model k with M's k-th column block applied on each
axis that produces the group's units and U's k-th row block on each axis that
consumes them). Which axes consume is the parser's `Role.in_axes` (the axes contracted
with the activation; where the trace cannot tell, as for a recurrent weight with one
group on both axes, a linear or conv weight's input axis); every other grouped axis (a
weight's output rows, biases, norm gains and statistics) produces. An entry none of whose producing axes carries a group
(a classifier head's weight and bias) is the average over the models: the models'
outputs are averaged. A group left unzipped gets M = U = I (K·n units): the models'
layers sit side by side, block-diagonally (partial zipping, a multi-head model).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from ..errors import AlignError, ConfigError
from ..parser.roles import Role
from ..spec import Entry, WeightSpec

StateDict = Mapping[str, torch.Tensor]
# the input axis of an op's "weight" argument, for entries whose trace leaves it open
_WEIGHT_INPUT_AXIS = {"linear": 1, "conv1d": 1, "conv2d": 1, "conv3d": 1, "convolution": 1,
                      "conv_transpose1d": 0, "conv_transpose2d": 0, "conv_transpose3d": 0}


@dataclass(frozen=True)
class GroupMerge:
    """One group's merge (n_out × K·n) and unmerge (K·n × n_out) matrices, float64; M @ U = I."""

    merge: torch.Tensor
    unmerge: torch.Tensor

    @property
    def size(self) -> int:
        """Units of the merged model in this group."""
        return self.merge.shape[0]

    @staticmethod
    def stacked(models: int, n: int) -> "GroupMerge":
        """The unzipped group: every model keeps its own units (K·n of them)."""
        eye = torch.eye(models * n, dtype=torch.float64)
        return GroupMerge(eye, eye)


def consumed_axes(key: str, entry: Entry, role: Role | None) -> set[int]:
    """The axes of `key` that consume their groups' units (see the module doc).

    AlignError when several axes carry groups and neither the trace nor the op's
    convention says which one consumes.
    """
    if role is not None and role.in_axes:
        return set(role.in_axes)
    grouped = [a for a, axis in enumerate(entry.axes) if any(f.group is not None for f in axis)]
    if len(grouped) < 2:
        return set()
    axis = _WEIGHT_INPUT_AXIS.get(role.op) if role is not None and role.arg == "weight" else None
    if axis is None:
        raise AlignError(f"{key}: groups on axes {grouped} and the trace does not say which axis consumes "
                         f"the units (op {role.op if role else 'unknown'!r})")
    return {axis}


def _contract(t: torch.Tensor, dim: int, matrix: torch.Tensor) -> torch.Tensor:
    """`t` with its `dim` index contracted against the rows of `matrix` (n × n_out): dim becomes n_out."""
    return torch.tensordot(t, matrix.to(device=t.device, dtype=t.dtype), dims=([dim], [0])).movedim(-1, dim)


def _entry(spec: WeightSpec, key: str, role: Role | None, tensors: Sequence[torch.Tensor],
           merges: Mapping[str, GroupMerge]) -> torch.Tensor:
    entry = spec.entry(key)
    consumed = consumed_axes(key, entry, role)
    k = len(tensors)
    dtype = tensors[0].dtype
    work = torch.float64
    produces = any(f.group is not None for a, axis in enumerate(entry.axes) if a not in consumed for f in axis)
    out = None
    for index, t in enumerate(tensors):
        view = t.detach().to(work).reshape(entry.factored_shape)
        dim = 0
        for a, axis in enumerate(entry.axes):
            for f in axis:
                if f.group is not None:
                    g = merges[f.group]
                    rows = slice(index * f.size, (index + 1) * f.size)
                    matrix = g.unmerge[rows, :] if a in consumed else g.merge[:, rows].T
                    view = _contract(view, dim, matrix)
                dim += 1
        out = view if out is None else out + view
    if not produces:
        out = out / k
    shape = []
    for axis in entry.axes:
        size = 1
        for f in axis:
            size *= merges[f.group].size if f.group is not None else f.size
        shape.append(size)
    return out.reshape(shape).to(dtype)


def apply_merges(
    spec: WeightSpec, roles: Mapping[str, Role], models: Sequence[StateDict], merges: Mapping[str, GroupMerge]
) -> dict[str, torch.Tensor]:
    """The merged state dict: every floating entry through `merges` (one per group), see the module doc.

    Entries without a group and integer buffers come averaged / from model 0; tied keys
    (spec aliases) stay tied. ConfigError when a group lacks its matrices or their
    shapes do not fit K models.
    """
    k = len(models)
    for name, group in spec.groups.items():
        g = merges.get(name)
        if g is None:
            raise ConfigError(f"no merge matrices for group {name!r}")
        if g.merge.shape != (g.size, k * group.size) or g.unmerge.shape != (k * group.size, g.size):
            raise ConfigError(f"group {name!r}: merge {tuple(g.merge.shape)} / unmerge {tuple(g.unmerge.shape)} "
                              f"do not fit {k} models of {group.size} units")
    out: dict[str, torch.Tensor] = {}
    for key, t in models[0].items():
        if key in spec.aliases:
            continue
        if not t.is_floating_point():
            out[key] = t.detach().clone()
            continue
        out[key] = _entry(spec, key, roles.get(key), [sd[key] for sd in models], merges)
    for key in models[0]:
        if key in spec.aliases:
            out[key] = out[spec.aliases[key]]
    return {key: out[key] for key in models[0]}
