"""Parameter graphs: a structure plus the flat vector of values its edges carry.

    g = weightspace.graph.from_module(model, example_inputs)      # trace + spec + graph
    g = weightspace.graph.from_parsed(weightspace.parse_model(model, example_inputs))
    g = weightspace.graph.build_graph(spec, state_dict, roles)    # from a spec (roles optional)
    state_dict = weightspace.graph.to_state_dict(g)                # exact inverse

Graph metanetworks (Lim et al., "Graph Metanetworks for Processing Diverse Neural
Architectures", ICLR 2024) and Kofinas et al. ("Graph Neural Networks for Learning
Equivariant Representations of Neural Networks", ICLR 2024) read a network as a
graph whose node relabelings are its symmetries; `node_permutation` gives the
relabeling induced by a spec group element.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Iterator, Mapping

import torch
from torch import nn

from ..parser import ParsedModel, parse_model
from ..parser.roles import Role
from ..spec import GroupElement, WeightSpec
from ..errors import GraphError
from .structure import GraphStructure, graph_structure, ravel, unravel


@dataclass(frozen=True, eq=False)
class ParamGraph:
    """One network as a graph: `structure` (shared by its architecture) and `values`.

    values: (num_values,) flat edge values (see `GraphStructure`), in the structure's
    value dtype; extras: non-float entries kept aside; aliases: tied keys of the
    original state dict, restored by `to_state_dict`.
    """

    structure: GraphStructure
    values: torch.Tensor
    extras: Mapping[str, torch.Tensor] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.values.shape != (self.structure.num_values,):
            raise GraphError(
                f"values have shape {tuple(self.values.shape)}, the graph carries {self.structure.num_values} values"
            )

    @property
    def num_nodes(self) -> int:
        return self.structure.num_nodes

    @property
    def num_edges(self) -> int:
        return self.structure.num_edges

    def with_values(self, values: torch.Tensor) -> "ParamGraph":
        """The same graph carrying other (e.g. edited or predicted) values."""
        return replace(self, values=values)

    def edge_values(self, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The bucket of edges carrying `width` values: (edge ids, (E_w, width) values)."""
        _, ids, where = next(edge_buckets(self.structure.edge_width, self.structure.edge_off, (width,)))
        return ids, self.values[where]

    def __repr__(self) -> str:
        return f"ParamGraph({self.num_nodes} nodes, {self.num_edges} edges, {self.values.numel()} values)"


def edge_buckets(
    edge_width: torch.Tensor, edge_off: torch.Tensor, widths: Iterable[int] | None = None
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Edges grouped by how many values they carry, so kernels of each size are read densely.

    Per width w (`widths`, default every positive width in `edge_width`): (w, edge ids (n,),
    the positions (n, w) of their values in the flat value vector). The one bucketing of
    graphs, graph batches, the GMN encoders and heads and the graph learned optimizer.
    """
    if widths is None:
        widths = [w for w in torch.unique(edge_width).tolist() if w > 0]
    for w in widths:
        ids = torch.nonzero(edge_width == w).flatten()
        yield int(w), ids, edge_off[ids, None] + torch.arange(w, device=edge_off.device)


def _dtypes(state_dict: Mapping[str, torch.Tensor], spec: WeightSpec) -> dict[str, torch.dtype]:
    return {k: state_dict[k].dtype for k in spec.entries}


def flatten_values(structure: GraphStructure, state_dict: Mapping[str, torch.Tensor], batch_dims: int = 0) -> torch.Tensor:
    """The (*batch, num_values) value vector(s) of a state dict (with `batch_dims` leading dims).

    Values are widened to the structure's value dtype; a tensor that dtype cannot hold
    exactly (float64 into a float32 structure) raises GraphError instead of losing bits."""
    parts = []
    lead = None
    for e in structure.entries:
        if not e.carried:
            continue
        t = state_dict[e.key]
        if torch.promote_types(t.dtype, structure.value_dtype) != structure.value_dtype:
            raise GraphError(f"{e.key}: {t.dtype} values do not fit the graph structure's {structure.value_dtype}; "
                             "build the structure from this state dict's dtypes (graph_structure(spec, dtypes=...))")
        lead = t.shape[:batch_dims]
        order = tuple(range(batch_dims)) + tuple(batch_dims + i for i in e.order)
        parts.append(t.permute(order).reshape(*lead, e.numel).to(structure.value_dtype))
    if not parts:
        return torch.zeros(0, dtype=structure.value_dtype)
    return torch.cat(parts, dim=-1)


def build_graph(
    spec: WeightSpec,
    state_dict: Mapping[str, torch.Tensor],
    roles: Mapping[str, Role] | None = None,
    structure: GraphStructure | None = None,
) -> ParamGraph:
    """The parameter graph of `state_dict` under `spec`.

    roles (`ParsedModel.roles`) tell input from output axes, bias from norm gain and
    q/k/v/o apart; without them conventions are used (see `graph_structure`). Pass a
    `structure` built once to reuse it across networks of one architecture. Raises
    KeyMismatchError / ShapeMismatchError naming the key where spec and state dict disagree.
    """
    spec.check(state_dict, where="build_graph")
    if structure is None:
        structure = graph_structure(spec, _dtypes(state_dict, spec), roles)
    elif structure.spec is not spec and structure.spec.to_dict() != spec.to_dict():
        raise GraphError("the structure was built from a different spec")
    for e in structure.entries:
        if state_dict[e.key].dtype.is_floating_point != e.carried and e.numel:
            raise GraphError(f"{e.key!r}: dtype {state_dict[e.key].dtype} does not match the structure ({e.dtype})")
    values = flatten_values(structure, state_dict)
    extras = {e.key: state_dict[e.key].clone() for e in structure.entries if not e.carried}
    aliases = {k: spec.aliases[k] for k in state_dict if k in spec.aliases}
    return ParamGraph(structure, values, extras, aliases)


def to_state_dict(graph: ParamGraph) -> dict[str, torch.Tensor]:
    """The state dict the graph carries: original keys, shapes and dtypes, bit-exact.

    Edited values (`graph.with_values(...)`) land where their edges sit.
    """
    out: dict[str, torch.Tensor] = {}
    values = graph.values
    for e in graph.structure.entries:
        if not e.carried:
            out[e.key] = graph.extras[e.key].clone()
            continue
        permuted = tuple(e.shape[i] for i in e.order)
        inverse = tuple(sorted(range(len(e.order)), key=lambda i: e.order[i]))
        flat = values[e.value_start : e.value_start + e.numel]
        t = torch.empty(e.shape, dtype=e.dtype, device=values.device)
        t.copy_(flat.reshape(permuted).permute(inverse))
        out[e.key] = t
    for alias, target in graph.aliases.items():
        out[alias] = out[target]
    return out


def node_permutation(structure: GraphStructure, g: GroupElement) -> torch.Tensor:
    """sigma (num_nodes,): applying `g` to the weights moves node i to node sigma[i].

    With the spec's convention x'[i] = x[perm[i]], the unit at old index j sits at
    argsort(perm)[j] afterwards; a node of a factored space moves by each factor's
    group and keeps its fixed coordinates.
    """
    sigma = torch.arange(structure.num_nodes)
    for sp in structure.spaces:
        moved = [j for j, f in enumerate(sp.factors) if f.group is not None and f.group in g.perms]
        if not moved:
            continue
        sizes = tuple(f.size for f in sp.factors)
        coords = unravel(sp.size, sizes)
        for j in moved:
            perm = g.perms[sp.factors[j].group]
            if perm.dim() != 1:
                raise GraphError("node_permutation takes an unbatched group element")
            coords[:, j] = torch.argsort(perm)[coords[:, j]]
        sigma[sp.start : sp.start + sp.size] = sp.start + ravel(coords, sizes)
    return sigma


def from_parsed(parsed: ParsedModel, state_dict: Mapping[str, torch.Tensor] | None = None) -> ParamGraph:
    """The parameter graph of a parsed model (roles from its trace), carrying `state_dict`
    (default: the traced model's own tensors)."""
    return build_graph(parsed.spec, parsed.state_dict if state_dict is None else state_dict, parsed.roles)


def from_module(
    model: nn.Module,
    example_inputs: tuple,
    example_kwargs: dict | None = None,
    spec: WeightSpec | None = None,
) -> ParamGraph:
    """Parse `model` (one export) and build its graph; a given `spec` replaces the parsed
    one, which is then left unverified."""
    parsed = parse_model(model, example_inputs, example_kwargs, verify=spec is None)
    return build_graph(parsed.spec if spec is None else spec, model.state_dict(), parsed.roles)
