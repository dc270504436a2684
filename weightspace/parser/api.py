"""`parse`: trace, build the spec, find extra symmetries, verify numerically."""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ..spec import WeightSpec
from .build import build_spec
from .extras import add_extras
from .trace import trace
from .verify import verify as verify_spec


def parse(
    model: nn.Module,
    example_inputs: tuple,
    example_kwargs: dict | None = None,
    *,
    strict: bool = False,
    verify: bool = True,
    extras: bool = True,
    generator: torch.Generator | None = None,
) -> WeightSpec:
    """The permutation-symmetry spec of `model`, traced on `example_inputs`.

    Traces with torch.export (ATen level), applies the per-op rules, and by default
    verifies the result: random group elements must leave the outputs unchanged in
    eval and train mode, and a negative control must change them. Raises TraceError
    when the model cannot be exported, SpecVerificationError when a group fails,
    UnknownOpError for an op without a rule when strict=True (otherwise its axes are
    frozen with a warning). `generator` seeds the verification draws.
    """
    tr = trace(model, example_inputs, example_kwargs, strict=strict)
    spec = build_spec(tr)
    if extras:
        spec = add_extras(spec, tr)
    notes = tuple(tr.ctx.notes)
    if not verify:
        return replace(spec.without_extras(), notes=notes + ("not verified",))
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    spec, record = verify_spec(model, spec, args, example_kwargs, generator)
    return replace(spec, notes=notes + (record.summary(),))
