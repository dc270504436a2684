"""Read a spec as a feed-forward chain of layers, the weight space NFN layers are written for.

Zhou et al.'s NFN layers (and Navon et al.'s DWS layers) assume an MLP or CNN:
layers `i = 0..L-1`, each a weight (n_out, n_in, *filter) and vectors on its outputs
(bias; here also norm parameters and running statistics), where the outputs of layer
i are the inputs of layer i+1. Kernel taps and the h·w factor a flatten puts on the
next layer's input axis are fixed "filter" factors.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from math import prod

from ..errors import SpecError
from ..spec import Entry, Factor, Group, WeightSpec


@dataclass(frozen=True)
class ChainLayer:
    """One layer: `weight` seen as (n_out, n_in, filter) plus `vectors` of length n_out."""

    weight: str
    n_out: int
    n_in: int
    filter_size: int
    out_group: str | None
    in_group: str | None
    vectors: tuple[str, ...]


def _neuron(axis: tuple[Factor, ...], size: int, key: str, side: str) -> tuple[str | None, tuple[Factor, ...]]:
    """(group of the neuron factor, remaining factors) of a weight's out/in axis."""
    if len(axis) == 0:
        return None, ()
    if len(axis) > 1 and axis[0].group is None and any(f.group for f in axis[1:]):
        raise SpecError(
            f"{key!r}: its {side} axis {axis} permutes a factor after a fixed one (a fused projection); "
            "NFN layers need one neuron factor first — use UNFLinear"
        )
    rest = axis[1:]
    if any(f.group is not None for f in rest):
        raise SpecError(f"{key!r}: its {side} axis {axis} has more than one permuted factor; use UNFLinear")
    return axis[0].group, rest


@dataclass(frozen=True)
class ChainLayout:
    """The layers of a feed-forward chain spec, input to output."""

    spec: WeightSpec
    layers: tuple[ChainLayer, ...]

    @classmethod
    def from_spec(cls, spec: WeightSpec) -> "ChainLayout":
        """Raise SpecError naming what breaks the chain (residual adds, attention, recurrences …)."""
        weights: dict[str, tuple] = {}
        vectors: list[Entry] = []
        for key, e in spec.entries.items():
            if len(e.shape) == 0:
                raise SpecError(f"{key!r} is a scalar; NFN layers read weights and vectors only (see metanet_spec)")
            if len(e.shape) == 1:
                vectors.append(e)
                continue
            out_g, out_rest = _neuron(e.axes[0], e.shape[0], key, "output")
            in_g, in_rest = _neuron(e.axes[1], e.shape[1], key, "input")
            if out_rest or any(f.group is not None for axis in e.axes[2:] for f in axis):
                raise SpecError(f"{key!r}: permuted factors beyond (out, in) neurons; use UNFLinear")
            n_out = e.axes[0][0].size if e.axes[0] else 1
            n_in = e.axes[1][0].size if e.axes[1] else 1
            weights[key] = (out_g, in_g, n_out, n_in, prod(e.shape) // (n_out * n_in))
        if not weights:
            raise SpecError("not a chain: the spec has no weight matrices")
        firsts = [k for k, w in weights.items() if w[1] is None]
        if len(firsts) != 1:
            raise SpecError(f"not a feed-forward chain: {len(firsts)} weights read the model input ({firsts})")
        by_in = {}
        for k, w in weights.items():
            if w[1] is not None:
                if w[1] in by_in:
                    raise SpecError(f"not a chain: group {w[1]!r} feeds both {by_in[w[1]]!r} and {k!r}; use UNFLinear")
                by_in[w[1]] = k
        order, key, seen = [], firsts[0], set()
        while True:
            if key in seen:
                raise SpecError(f"not a chain: {key!r} is reached twice")
            seen.add(key)
            order.append(key)
            out_g = weights[key][0]
            if out_g is None:
                break
            if out_g not in by_in:
                raise SpecError(f"not a chain: the outputs of {key!r} (group {out_g!r}) feed no weight")
            key = by_in[out_g]
        left = sorted(set(weights) - seen)
        if left:
            raise SpecError(f"not a feed-forward chain: {left} are off the path from input to output; use UNFLinear")
        outs = {weights[k][0]: k for k in order}
        attached: dict[str, list[str]] = {k: [] for k in order}
        for v in vectors:
            g = v.axes[0][0].group if v.axes[0] else None
            if len(v.axes[0]) > 1:
                raise SpecError(f"{v.key!r}: factored vector axis {v.axes[0]}; use UNFLinear")
            owner = outs.get(g)
            if owner is None or weights[owner][2] != v.shape[0]:
                raise SpecError(f"{v.key!r}: a vector on group {g!r} that is no layer's output; use UNFLinear")
            attached[owner].append(v.key)
        layers = tuple(
            ChainLayer(k, weights[k][2], weights[k][3], weights[k][4], weights[k][0], weights[k][1], tuple(attached[k]))
            for k in order
        )
        return cls(spec, layers)

    def __len__(self) -> int:
        return len(self.layers)


NP_IN, NP_OUT = "np.input", "np.output"


def np_spec(spec: WeightSpec) -> WeightSpec:
    """The chain spec with the model's input and output neurons permuted too (NFN's NP group).

    NFN-NP layers commute with this larger group; the UNF basis of the returned spec
    is therefore the space NP layers span.
    """
    chain = ChainLayout.from_spec(spec)
    first, last = chain.layers[0], chain.layers[-1]
    entries = dict(spec.entries)

    def relabel(key: str, axis: int, group: str, size: int) -> None:
        e = entries[key]
        old = e.axes[axis]
        new = (Factor(group, size),) + tuple(old[1:])
        entries[key] = replace(e, axes=e.axes[:axis] + (new,) + e.axes[axis + 1 :])

    relabel(first.weight, 1, NP_IN, first.n_in)
    relabel(last.weight, 0, NP_OUT, last.n_out)
    for v in last.vectors:
        relabel(v, 0, NP_OUT, last.n_out)
    groups = dict(spec.groups)
    groups[NP_IN] = Group(NP_IN, first.n_in, "neuron")
    groups[NP_OUT] = Group(NP_OUT, last.n_out, "neuron")
    return replace(spec, entries=entries, groups=groups, verified=False, provenance="manual")
