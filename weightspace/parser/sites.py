"""Where each permutation group shows up in a model's activations.

The trace gives every intermediate tensor of the exported graph as atoms per axis;
mapping those atoms to the spec's group names tells, for every data-dependent node,
which of its axes (or factors of an axis) a group permutes. Activation matching reads
units at these sites (pre- and post-activation, residual sums, heads).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..spec import Factor, WeightSpec
from .context import TensorValue
from .trace import Trace


@dataclass(frozen=True)
class Site:
    """A data-dependent graph node whose factored axes carry groups.

    factors: one Factor per factored dimension of the node's value, in order
    (group None = fixed or not a group); shape: the node's unfactored shape.
    """

    node: str
    shape: tuple[int, ...]
    factors: tuple[Factor, ...]

    def dims_of(self, group: str) -> list[int]:
        return [d for d, f in enumerate(self.factors) if f.group == group]


def _root_names(tr: Trace, spec: WeightSpec) -> dict[int, str]:
    """Atom root -> group name, read off the entries the spec was built from."""
    atoms = tr.ctx.atoms
    names: dict[int, str] = {}
    for key, value in tr.entries.items():
        entry = spec.entries.get(key)
        if entry is None:
            continue
        for axis_atoms, factors in zip(value.axes, entry.axes):
            leaves = [a for a in atoms.leaves(axis_atoms) if atoms.size(a) > 1]
            unfixed = [a for a in leaves if atoms.fixed_reason(a) is None]
            grouped = [f.group for f in factors if f.group is not None]
            for leaf, name in zip(unfixed, grouped):
                names[atoms.find(leaf)] = name
    return names


def _data_nodes(program) -> set[str]:
    """Names of graph nodes whose value depends on a user input."""
    user = {s.arg.name for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"}
    out = set(user)
    for node in program.graph.nodes:
        if node.op == "call_function" and any(a.name in out for a in node.all_input_nodes):
            out.add(node.name)
    return out


def activation_sites(tr: Trace, spec: WeightSpec) -> tuple[Site, ...]:
    """Every data-dependent node of the trace on which one of `spec`'s groups acts."""
    names = _root_names(tr, spec)
    atoms = tr.ctx.atoms
    data = _data_nodes(tr.program)
    sites = []
    for node in tr.program.graph.nodes:
        value = tr.values.get(node.name)
        if node.op != "call_function" or node.name not in data or not isinstance(value, TensorValue):
            continue
        factors: list[Factor] = []
        for size, axis in zip(value.shape, value.axes):
            leaves = [a for a in atoms.leaves(axis) if atoms.size(a) > 1]
            if not leaves:
                factors.append(Factor(None, size))
                continue
            for leaf in leaves:
                name = names.get(atoms.find(leaf)) if atoms.fixed_reason(leaf) is None else None
                factors.append(Factor(name if name in spec.groups else None, atoms.size(leaf)))
        if any(f.group is not None for f in factors):
            sites.append(Site(node.name, tuple(value.shape), tuple(factors)))
    return tuple(sites)
