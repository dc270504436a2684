"""`UNFMetaNet`: a learned optimizer's meta-network with UNF equivariant layers.

Zhou, Finn & Harrison, *Universal Neural Functionals* (2024), §4.2: the update
network mixes information across every entry of the task model through the most
general permutation-equivariant linear layers of its spec (`weightspace.nn.UNFLinear`),
between a per-parameter encoder and a per-parameter head.

UNF layers mix fixed factors (input pixels, class logits) densely, and their terms
follow the spec's structure, so the weights fit every task model of one
architecture *shape* (same entries, same fixed axes) at any hidden widths: another
width is handled by building the layers for that spec and calling them with these
weights. A different depth or input size is refused with a `SpecError`.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from ..errors import SpecError
from ..nn import UNFLinear, metanet_spec
from ..spec import WeightSpec
from .nets import Features, MetaNet, _check_channels, _pointwise


def prepare_spec(spec: WeightSpec, keys: list[str] | None = None) -> WeightSpec:
    """The spec a learned optimizer reads: parameters only, permutations only."""
    return metanet_spec(spec.without_extras(), keys=keys)


class _UNFStack(nn.Module):
    """Residual UNF layers on encoded features: z <- z + relu(UNF(z))."""

    def __init__(self, spec: WeightSpec, hidden: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(UNFLinear(spec, hidden, hidden, dedupe=False) for _ in range(layers))
        self.codec = self.layers[0].codec

    def forward(self, x: Features) -> Features:
        z = self.codec.encode(x, where="UNFMetaNet")
        for layer in self.layers:
            y = layer.forward_encoded(z)
            z = {k: z[k] + torch.relu(y[k]) for k in z}
        return self.codec.decode(z)


class UNFMetaNet(MetaNet):
    """Per-parameter encoder, residual UNF layers over the spec, per-parameter head.

    Args:
        spec: the task model's spec (reduced with `prepare_spec`).
        in_channels, hidden, layers, out_channels: feature channels C, hidden channels,
            number of UNF layers, output channels.

    Shapes: input `key -> (B, C, *shape)` for every entry of `spec`; output
    `key -> (B, out_channels, *shape)`.
    """

    kind = "unf"

    def __init__(self, spec: WeightSpec, in_channels: int, hidden: int = 16, layers: int = 2, out_channels: int = 1):
        super().__init__(in_channels, hidden, layers, out_channels)
        self.spec = prepare_spec(spec)
        self.encoder = nn.Linear(in_channels, hidden)
        self.stack = _UNFStack(self.spec, hidden, layers)
        self.head = nn.Linear(hidden, out_channels)
        self._other: dict[int, tuple[WeightSpec, _UNFStack]] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        for layer in self.stack.layers:
            layer.reset_parameters()
        self.reset_head(self.head)

    def config(self) -> dict:
        return {**super().config(), "spec": self.spec.to_json()}

    def _stack_for(self, spec: WeightSpec | None) -> _UNFStack | None:
        """None when `spec` is this net's own; else a stack to call with this net's weights."""
        if spec is None or spec is self.spec:
            return None
        cached = self._other.get(id(spec))
        if cached is not None:
            return cached[1]
        reduced = prepare_spec(spec)
        if reduced.to_json() == self.spec.to_json():
            stack = None
        else:
            if list(reduced.entries) != list(self.spec.entries):
                raise SpecError(
                    f"UNFMetaNet was built for entries {list(self.spec.entries)[:6]}, got "
                    f"{list(reduced.entries)[:6]}: a UNF meta-network fits one architecture shape"
                )
            stack = _UNFStack(reduced, self.hidden, self.layers)
            mine = dict(self.stack.named_parameters())
            theirs = dict(stack.named_parameters())
            if mine.keys() != theirs.keys() or any(mine[n].shape != theirs[n].shape for n in mine):
                raise SpecError(
                    "UNFMetaNet: the task spec has other fixed axes or structure than the one the "
                    "meta-network was built for (only hidden widths may differ)"
                )
            stack.requires_grad_(False)
        self._other[id(spec)] = (spec, stack)
        return stack

    def forward(self, x: Features, spec: WeightSpec | None = None) -> Features:
        _check_channels(x, self.in_channels, type(self).__name__)
        h = {k: torch.relu(_pointwise(self.encoder, t)) for k, t in x.items()}
        stack = self._stack_for(spec)
        if stack is None:
            h = self.stack(h)
        else:
            h = functional_call(stack, dict(self.stack.named_parameters()), (h,))
        return {k: _pointwise(self.head, t) for k, t in h.items()}
