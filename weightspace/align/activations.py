"""Where each permutation group shows up in a model's activations, and their values.

The parser's trace gives every intermediate tensor of the exported graph as atoms
per axis; mapping those atoms to the spec's group names tells, for every
data-dependent node, which of its axes (or factors of an axis) a group permutes.
`GroupActivations` runs the exported graph on a state dict and a batch and
returns those node values, so activation matching and REPAIR can read units at
every place the group acts (pre- and post-activation, residual sums, heads).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.fx
from torch import nn

from ..parser.build import build_spec
from ..parser.context import TensorValue
from ..parser.trace import trace
from ..spec import Factor, WeightSpec
from ..errors import AlignError
from .modules import complete, mode


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


def _root_names(tr, spec: WeightSpec) -> dict[int, str]:
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


class GroupActivations:
    """Capture the activations that carry the spec's groups, for any state dict.

    Args:
        model: template module (never modified); traced once in eval mode.
        spec: the spec to align with; its groups must be the parser's for this model.
        example_inputs: a batch of the shape every later batch will have (the
            exported graph is specialized to it).
    """

    def __init__(self, model: nn.Module, spec: WeightSpec, example_inputs: tuple):
        with mode(model, False), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            tr = trace(model, tuple(example_inputs))
        traced = build_spec(tr)
        unknown = [n for n, g in spec.groups.items() if traced.groups.get(n) is None or traced.groups[n].size != g.size]
        if unknown:
            raise AlignError(
                f"groups {unknown[:6]} of the spec are not the groups the parser finds in this model; "
                "activation matching needs the spec from ws.parse(model, ...)"
            )
        self.model = model
        self.spec = spec
        self.program = tr.program
        self.input_shapes = tuple(tuple(t.shape) for t in example_inputs if isinstance(t, torch.Tensor))
        names = _root_names(tr, traced)
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
        self.sites = tuple(sites)
        missing = [n for n in spec.groups if not any(s.dims_of(n) for s in self.sites)]
        self.unreached = tuple(missing)

    def _flat_args(self, sd: Mapping[str, torch.Tensor], args: tuple) -> list:
        sd = complete(self.model, sd)
        program = self.program
        user = iter(a for a in args if isinstance(a, torch.Tensor))
        flat = []
        for spec in program.graph_signature.input_specs:
            kind, target = spec.kind.name, spec.target
            if kind in ("PARAMETER", "BUFFER"):
                key = target.removeprefix("model.")
                flat.append(sd[key] if key in sd else program.state_dict.get(target, program.constants.get(target)))
            elif kind in ("CONSTANT_TENSOR", "CUSTOM_OBJ"):
                flat.append(program.constants[target])
            else:
                flat.append(next(user))
        return flat

    @torch.no_grad()
    def __call__(self, sd: Mapping[str, torch.Tensor], args: tuple) -> dict[str, torch.Tensor]:
        """node name -> value (shaped as its Site) of every site, on one batch."""
        shapes = tuple(tuple(t.shape) for t in args if isinstance(t, torch.Tensor))
        if shapes != self.input_shapes:
            raise AlignError(
                f"batch shapes {shapes} differ from the example inputs {self.input_shapes} the graph was traced on; "
                "use equal-sized batches (drop the last partial batch)"
            )
        wanted = {s.node for s in self.sites}
        captured: dict[str, torch.Tensor] = {}

        class _Capture(torch.fx.Interpreter):
            def run_node(self, n):
                out = super().run_node(n)
                if n.name in wanted:
                    captured[n.name] = out.detach()
                return out

        _Capture(self.program.graph_module).run(*self._flat_args(sd, args))
        return captured
