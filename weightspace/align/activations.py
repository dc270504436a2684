"""The values of a model's activations at the places its groups act.

`ParsedModel.sites` (from the parser's one trace) says, for every data-dependent
node of the exported graph, which of its axes (or factors of an axis) a group
permutes. `GroupActivations` runs that exported graph on a state dict and a batch
and returns those node values, so activation matching can read units at every
place the group acts (pre- and post-activation, residual sums, heads).
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.fx
from torch import nn

from ..errors import AlignError
from ..parser import ParsedModel
from .modules import complete


class GroupActivations:
    """Capture the activations that carry a parsed model's groups, for any state dict.

    Args:
        model: template module (never modified), the one `parsed` was traced from.
        parsed: `ws.parse_model(model, example_inputs)`; its exported graph is
            specialized to the example inputs' shapes, which every batch must have.
    """

    def __init__(self, model: nn.Module, parsed: ParsedModel):
        self.model = model
        self.spec = parsed.spec
        self.program = parsed.program
        self.input_shapes = parsed.input_shapes
        self.sites = parsed.sites
        self.unreached = tuple(n for n in self.spec.groups if not any(s.dims_of(n) for s in self.sites))

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
                "use equal-sized batches (drop the last partial batch) and parse on a batch of that shape"
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
