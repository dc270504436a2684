"""`parse_model` / `parse`: trace once, build the spec, find extra symmetries, verify."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import torch
from torch import nn

from ..spec import WeightSpec
from .build import build_spec
from .extras import add_extras
from .roles import Role, roles_from_trace
from .sites import Site, activation_sites
from .trace import trace
from .verify import verify as verify_spec


@dataclass(frozen=True, eq=False)
class ParsedModel:
    """What one trace of a model taught the parser; consumers read it instead of exporting again.

    spec: the (verified) spec, what `parse` returns; roles: per state-dict entry, how the
    traced forward uses it (the graph builder's input); sites: the data-dependent nodes
    of `program` on which groups act (activation matching's input); program: the
    torch.export program, traced in eval mode and specialized to `input_shapes`, the
    shapes of the example input tensors; state_dict: the traced model's tensors (not copies).
    """

    spec: WeightSpec
    roles: Mapping[str, Role]
    sites: tuple[Site, ...]
    program: torch.export.ExportedProgram
    input_shapes: tuple[tuple[int, ...], ...]
    state_dict: Mapping[str, torch.Tensor]

    def __repr__(self) -> str:
        return (f"ParsedModel({len(self.spec.groups)} groups, {len(self.spec.entries)} entries, "
                f"{len(self.sites)} activation sites, inputs {list(self.input_shapes)})")


def parse_model(
    model: nn.Module,
    example_inputs: tuple,
    example_kwargs: dict | None = None,
    *,
    strict: bool = False,
    verify: bool = True,
    extras: bool = True,
    generator: torch.Generator | None = None,
    other_calls: Sequence[tuple[tuple, dict]] = (),
    check_shapes: bool = False,
) -> ParsedModel:
    """Trace `model` on `example_inputs` once and keep the spec, the roles and the activation sites.

    Traces with torch.export (ATen level, eval mode), applies the per-op rules, and by
    default verifies the result: random group elements must leave the outputs unchanged
    at the given weights and on copies re-drawn at O(1) scale, in eval and train mode,
    and a negative control must change them. Raises TraceError when the model cannot be
    exported (or has data-dependent shapes), SpecVerificationError when a group fails,
    UnknownOpError for an op without a rule when strict=True (otherwise its axes are
    frozen with a warning). `generator` seeds the verification draws.

    The spec holds on the traced call, specialized to its input shapes: a branch on a
    shape or on a flag follows that call only. `other_calls` ((args, kwargs) pairs, e.g.
    `[((x,), {"aux": True})]`) are traced too and the spec must hold on each; entries
    that no traced call reads are fixed, with a warning naming them. The spec's notes name
    the traced shapes; `check_shapes=True` exports each call once more with every input
    dimension dynamic (about 4 exports' time) and warns (`ShapeGuardWarning`) where
    torch.export records a condition on shapes, i.e. the trace branched on a shape.
    """
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    other_calls = tuple((a if isinstance(a, tuple) else (a,), dict(k or {})) for a, k in other_calls)
    tr = trace(model, args, example_kwargs, strict=strict, other_calls=other_calls, check_shapes=check_shapes)
    spec = build_spec(tr)
    if extras:
        spec = add_extras(spec, tr)
    notes = tuple(tr.ctx.notes)
    if not verify:
        spec = replace(spec.without_extras(), notes=notes + ("not verified",))
    else:
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        spec, record = verify_spec(model, spec, args, example_kwargs, generator, other_calls)
        spec = replace(spec, notes=notes + (record.summary(),))
    shapes = tuple(tuple(t.shape) for t in args if isinstance(t, torch.Tensor))
    return ParsedModel(spec, roles_from_trace(tr), activation_sites(tr, spec), tr.program, shapes, model.state_dict())


def parse(
    model: nn.Module,
    example_inputs: tuple,
    example_kwargs: dict | None = None,
    *,
    strict: bool = False,
    verify: bool = True,
    extras: bool = True,
    generator: torch.Generator | None = None,
    other_calls: Sequence[tuple[tuple, dict]] = (),
    check_shapes: bool = False,
) -> WeightSpec:
    """The permutation-symmetry spec of `model`, traced on `example_inputs`: `parse_model(...).spec`."""
    return parse_model(
        model, example_inputs, example_kwargs, strict=strict, verify=verify, extras=extras, generator=generator,
        other_calls=other_calls, check_shapes=check_shapes,
    ).spec
