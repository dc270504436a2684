"""Exports of a `WeightSpec` to the formats of the anchor codebases.

- Git Re-Basin (Ainsworth et al.) describes a weight space as `axes_to_perm`:
  key -> one permutation name (or None) per axis.
- Universal Neural Functionals (Zhou et al.) label each axis with an integer
  permutation index, negative for unpermuted axes.

Both know one permutation per axis; an axis made of several factors (heads ×
head_dim, channels × h·w) is exported as a tuple of names (Re-Basin) or, for UNF,
over the *factored* shape that `factored_shapes` gives, since UNF needs one label
per tensor axis.
"""
from __future__ import annotations

from .weight_spec import WeightSpec


def to_rebasin(spec: WeightSpec) -> dict[str, tuple]:
    """key -> per-axis permutation name, None, or a tuple of names for factored axes."""
    out: dict[str, tuple] = {}
    for key, e in spec.entries.items():
        labels = []
        for axis in e.axes:
            named = [f.group for f in axis]
            if len(axis) == 0:
                labels.append(None)
            elif len(axis) == 1:
                labels.append(named[0])
            elif all(n is None for n in named):
                labels.append(None)
            else:
                labels.append(tuple(named))
        out[key] = tuple(labels)
    for alias, target in spec.aliases.items():
        out[alias] = out[target]
    return out


def perm_to_axes(spec: WeightSpec) -> dict[str, list[tuple[str, int]]]:
    """Git Re-Basin's inverse map: group name -> [(key, axis)] (factored axes included)."""
    return {name: [(m.key, m.axis) for m in spec.members(name)] for name in spec.groups}


def factored_shapes(spec: WeightSpec) -> dict[str, tuple[int, ...]]:
    """key -> shape with every factored axis split into its factors (size-1 axes kept)."""
    out = {}
    for key, e in spec.entries.items():
        shape: list[int] = []
        for n, axis in zip(e.shape, e.axes):
            shape.extend([f.size for f in axis] if len(axis) > 1 else [n])
        out[key] = tuple(shape)
    return out


def to_unf(spec: WeightSpec) -> dict[str, tuple[int, ...]]:
    """key -> UNF per-axis labels over `factored_shapes(spec)`: group index, or -1 if fixed."""
    index = {name: i for i, name in enumerate(spec.groups)}
    out: dict[str, tuple[int, ...]] = {}
    for key, e in spec.entries.items():
        labels: list[int] = []
        for axis in e.axes:
            if len(axis) <= 1:
                g = axis[0].group if axis else None
                labels.append(index[g] if g is not None else -1)
            else:
                labels.extend(index[f.group] if f.group is not None else -1 for f in axis)
        out[key] = tuple(labels)
    return out
