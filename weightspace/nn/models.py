"""Full metanetworks built from one spec: equivariant stacks and invariant classifiers.

`EquivariantNetwork` maps weights to per-entry outputs (weight editing, learned
optimizers); `InvariantClassifier` is the invariant-head classifier of Zhou et al.
(NFN): equivariant layers with pointwise nonlinearities, invariant pooling, an MLP.
Layers pass encoded features to each other, so the channels-first layout is only
converted at the ends.

layer="np"  NFN-NP (chains: MLP/CNN; equivariant to the larger NP group, cheapest),
layer="hnp" NFN-HNP (chains; exactly the hidden-neuron symmetry),
layer="unf" UNF (any spec the parser produces: residual nets, transformers, RNNs).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..spec import WeightSpec
from .nfn import HNPLinear, HNPPool, NPLinear, NPPool
from .unf import UNFLinear, UNFPool

LAYERS = {"np": (NPLinear, NPPool), "hnp": (HNPLinear, HNPPool), "unf": (UNFLinear, UNFPool)}


def _layer_kind(layer: str) -> tuple[type, type]:
    if layer not in LAYERS:
        raise ConfigError(f"unknown layer kind {layer!r}; expected one of {sorted(LAYERS)}")
    return LAYERS[layer]


class EquivariantNetwork(nn.Module):
    """Equivariant layers with pointwise `activation` between them; per-entry outputs.

    Args:
        spec: the weight space (see `metanet_spec`).
        channels: hidden channel counts, one per hidden layer.
        in_channels, out_channels: C of the input and of the output features.
        layer: "np", "hnp" or "unf" (module docstring).
        activation: a module factory applied elementwise (default ReLU).
        layer_kwargs: passed to every layer (e.g. io_embed=True for NP, max_shared for UNF).

    Shapes:
        input `key -> (B, in_channels, *shape)`, output `key -> (B, out_channels, *shape)`.
    """

    def __init__(
        self,
        spec: WeightSpec,
        channels: Sequence[int] = (32, 32),
        *,
        in_channels: int = 1,
        out_channels: int = 1,
        layer: str = "unf",
        activation: Callable[[], nn.Module] = nn.ReLU,
        **layer_kwargs,
    ):
        super().__init__()
        linear, _ = _layer_kind(layer)
        widths = [in_channels, *channels, out_channels]
        self.spec, self.kind = spec, layer
        self.layers = nn.ModuleList(linear(spec, a, b, **layer_kwargs) for a, b in zip(widths[:-1], widths[1:]))
        self.activation = activation()
        self.codec = self.layers[0].codec
        self.in_channels, self.out_channels = in_channels, out_channels

    def forward_encoded(self, z: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for i, layer in enumerate(self.layers):
            z = layer.forward_encoded(z)
            if i < len(self.layers) - 1:
                z = {k: self.activation(t) for k, t in z.items()}
        return z

    def forward(self, x) -> dict[str, torch.Tensor]:
        z = self.codec.encode(x, self.in_channels, where=f"{type(self).__name__} input")
        return self.codec.decode(self.forward_encoded(z))

    def __repr__(self) -> str:
        widths = [self.in_channels] + [lay.out_channels for lay in self.layers]
        return f"EquivariantNetwork({self.kind}, channels {widths}, {len(self.spec.entries)} entries)"


class InvariantClassifier(nn.Module):
    """Equivariant layers, invariant pooling, then an MLP head: an invariant function of weights.

    Args:
        spec, in_channels, layer, activation, layer_kwargs: as `EquivariantNetwork`.
        num_classes: outputs of the head (1 for regression).
        channels: channel counts of the equivariant layers (all followed by `activation`).
        hidden: widths of the head's hidden layers.
        dropout: dropout before each head layer.

    Shapes:
        input `key -> (B, in_channels, *shape)` (dict or `WeightSpaceBatch`); output (B, num_classes).
    """

    def __init__(
        self,
        spec: WeightSpec,
        num_classes: int,
        channels: Sequence[int] = (32, 32, 32),
        *,
        in_channels: int = 1,
        hidden: Sequence[int] = (256,),
        layer: str = "np",
        activation: Callable[[], nn.Module] = nn.ReLU,
        dropout: float = 0.0,
        **layer_kwargs,
    ):
        super().__init__()
        if not channels:
            raise ConfigError("InvariantClassifier needs at least one equivariant layer (channels is empty)")
        _, pool = _layer_kind(layer)
        self.body = EquivariantNetwork(
            spec, channels[:-1], in_channels=in_channels, out_channels=channels[-1], layer=layer,
            activation=activation, **layer_kwargs,
        )
        self.pool = pool(spec, channels[-1])
        self.activation = activation()
        self.head = mlp(self.pool.out_features, hidden, num_classes, activation, dropout)
        self.spec, self.num_classes = spec, num_classes

    def features(self, x) -> torch.Tensor:
        """The pooled invariant features (B, pool.out_features)."""
        z = self.body.codec.encode(x, self.body.in_channels, where="InvariantClassifier input")
        z = self.body.forward_encoded(z)
        return self.pool.forward_encoded({k: self.activation(t) for k, t in z.items()})

    def forward(self, x) -> torch.Tensor:
        return self.head(self.features(x))

    def __repr__(self) -> str:
        return f"InvariantClassifier({self.body!r} -> {self.pool!r} -> MLP -> {self.num_classes})"


def mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    activation: Callable[[], nn.Module] = nn.ReLU,
    dropout: float = 0.0,
) -> nn.Sequential:
    """Linear layers of widths in -> *hidden -> out, `activation` (and dropout) between them."""
    widths = [in_features, *hidden, out_features]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)
