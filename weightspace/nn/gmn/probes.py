"""Probe features: run each input network on learned probe inputs and give every unit
its activations (Lim et al., "Graph Metanetworks", ICLR 2024, §probe features; Kofinas
et al., ICLR 2024). A unit's activation moves with the unit under any permutation
symmetry, so the features are equivariant by construction.

The network is run functionally from the graph batch: the batch's value vectors are
mapped back to (stacked) state dicts through the graph round trip and evaluated with
`torch.func.functional_call` under `torch.func.vmap`, one call for all networks of the
architecture. Units are the outputs of `nn.Linear` / `nn.Conv*` modules (pre-activation;
spatial positions and token axes averaged).

Units no permutation moves (input/output/fixed nodes: an INR's output, a classifier's
logits) also give *readings*: their activations on the probes in a fixed order, an
invariant graph-level feature — the function itself sampled at learned inputs, which
is what lets a probe model approach a classifier of the rendered signal.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, vmap

from ...graph.structure import GraphStructure
from ...graph.vocab import NODE_TYPE
from ...errors import GMNError
from .heads import unflatten_values
from .inputs import GraphInputs

_UNIT_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_FIXED_NODES = tuple(NODE_TYPE[t] for t in ("input", "output", "fixed"))


@dataclass(frozen=True)
class ProbedUnits:
    """The output units of one module: its name, channel dim, and their graph nodes (in unit order)."""

    module: str
    channel_dim: int
    nodes: torch.Tensor


def probed_units(model: nn.Module, structure: GraphStructure) -> tuple[ProbedUnits, ...]:
    """Every Linear/Conv module of `model` whose weight's output units are nodes of `structure`."""
    modules = dict(model.named_modules())
    found = []
    for e in structure.entries:
        name, _, leaf = e.key.rpartition(".")
        module = modules.get(name)
        if leaf != "weight" or not isinstance(module, _UNIT_MODULES) or not e.carried or e.order[0] != 0:
            continue
        dst = structure.edge_index[1, e.edge_start : e.edge_start + e.edge_count]
        nodes = torch.unique_consecutive(dst)
        if nodes.numel() != e.shape[0]:
            continue
        found.append(ProbedUnits(name, -1 if isinstance(module, nn.Linear) else 1, nodes))
    return tuple(found)


class ProbeFeatures(nn.Module):
    """Node features from the activations of each network of one architecture on learned probes.

    Args:
        model: a module of the architecture (copied; its weights are never used).
        structure: the graph structure of that architecture.
        input_shape: shape of one probe input (e.g. (2,) for a 2-D INR, (3, 32, 32)).
        hidden: output feature size; num_probes: learned inputs; init_scale: their initial range.
        init: optional starting probes (num_probes, *input_shape), e.g. the data's grid
            coordinates for INRs (then the readings start as the rendered signal).

    Graphs of other architectures in a batch get zeros. Shapes: `GraphInputs` -> (N, hidden).
    """

    def __init__(
        self,
        model: nn.Module,
        structure: GraphStructure,
        input_shape: tuple[int, ...],
        hidden: int,
        num_probes: int = 16,
        init_scale: float = 1.0,
        init: torch.Tensor | None = None,
    ):
        super().__init__()
        net = copy.deepcopy(model).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.__dict__["_net"] = net  # not a submodule: its weights come from the batch
        self.structure = structure
        self.units = probed_units(net, structure)
        if not self.units:
            raise GMNError(f"no Linear/Conv module of {type(model).__name__} writes units of this graph structure")
        if init is None:
            init = (2 * torch.rand(num_probes, *input_shape) - 1) * init_scale
        elif tuple(init.shape) != (num_probes, *input_shape):
            raise GMNError(f"init probes have shape {tuple(init.shape)}, expected {(num_probes, *input_shape)}")
        self.probes = nn.Parameter(init.detach().clone().float())
        self.norm = nn.LayerNorm(num_probes)
        self.project = nn.Linear(num_probes, hidden)
        self._captured: dict[str, torch.Tensor] = {}
        modules = dict(net.named_modules())
        for u in self.units:
            modules[u.module].register_forward_hook(self._hook(u.module))
        self._spec = structure.spec.to_dict()
        fixed = torch.isin(structure.node_type, torch.tensor(_FIXED_NODES))
        self._fixed_units = tuple(i for i, u in enumerate(self.units) if bool(fixed[u.nodes].all()))

    @property
    def reading_size(self) -> int:
        """Length of `read`'s invariant readings: probes × units no permutation moves."""
        return self.probes.shape[0] * sum(self.units[i].nodes.numel() for i in self._fixed_units)

    def _hook(self, name: str):
        def hook(module, args, output):
            self._captured[name] = output

        return hook

    def _matches(self, s: GraphStructure) -> bool:
        return s is self.structure or (
            s.num_nodes == self.structure.num_nodes and s.num_values == self.structure.num_values
            and s.spec.to_dict() == self._spec
        )

    def _run(self, values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per unit module, the activations (B, units, num_probes) of B networks given as value vectors."""
        params = unflatten_values(self.structure, values)
        probes = self.probes.to(values.dtype)

        def run(sd: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
            self._captured.clear()
            functional_call(self._net, sd, (probes,))
            outs = []
            for u in self.units:
                y = self._captured[u.module].movedim(u.channel_dim, -1)
                outs.append(y.reshape(y.shape[0], -1, y.shape[-1]).mean(1).T)
            self._captured.clear()
            return tuple(outs)

        return vmap(run)(params)

    def activations(self, values: torch.Tensor) -> torch.Tensor:
        """Unit activations (B, N_s, num_probes) of B networks given as value vectors (B, V); 0 off units."""
        return self._scatter(self._run(values))

    def _scatter(self, per_unit: tuple[torch.Tensor, ...]) -> torch.Tensor:
        a0 = per_unit[0]
        out = a0.new_zeros(a0.shape[0], self.structure.num_nodes, a0.shape[-1])
        for u, a in zip(self.units, per_unit):
            out = out.index_copy(1, u.nodes.to(a.device), a)
        return out

    def forward(self, g: GraphInputs) -> torch.Tensor:
        """Node features (N, hidden); zeros on graphs of other architectures."""
        return self.read(g)[0]

    def read(self, g: GraphInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Node features (N, hidden) and invariant readings (G, reading_size), from one run of the networks."""
        mine = [i for i, s in enumerate(g.structures) if self._matches(s)]
        dtype = self.project.weight.dtype
        out = g.edge_val.new_zeros(g.num_nodes, self.project.out_features).to(dtype)
        readings = g.edge_val.new_zeros(g.num_graphs, self.reading_size).to(dtype)
        if not mine:
            return out, readings
        graphs = torch.tensor(mine, device=g.edge_val.device)
        v = self.structure.num_values
        values = g.edge_val[g.value_ptr[graphs, None] + torch.arange(v, device=graphs.device)].to(dtype)
        per_unit = self._run(values)
        units = torch.cat([u.nodes for u in self.units]).to(graphs.device)
        feats = self.project(self.norm(torch.cat(per_unit, dim=1)))
        where = (g.node_ptr[graphs, None] + units).flatten()
        if self._fixed_units:
            fixed = torch.cat([per_unit[i].flatten(1) for i in self._fixed_units], dim=1)
            readings = readings.index_copy(0, graphs, fixed)
        return out.index_add(0, where, feats.reshape(-1, feats.shape[-1])), readings

    def extra_repr(self) -> str:
        return f"probes={tuple(self.probes.shape)}, units={[u.module for u in self.units]}"
