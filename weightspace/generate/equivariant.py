"""`EquivariantDenoiser`: a spec-equivariant denoiser of checkpoint updates (ours).

The noisy update and the start checkpoint are the two input channels of a stack of
the library's equivariant layers (`weightspace.nn`: NFN-NP / NFN-HNP for MLP and CNN
chains, UNF for any spec), with per-parameter outputs. The diffusion time and the
two metrics are invariant scalars: their embedding sets a FiLM scale and shift
(Perez et al., 2018) per channel and per encoded tensor after every hidden layer,
which commutes with the group because it is constant over permuted indices. Hidden
layers of equal width are residual; the last layer starts at zero, so the model
starts by predicting Δ = 0.

layer="np" (default) with io_embed=True is NFN's NP layer with learned embeddings on
the model's input and output neurons (Zhou et al. 2023): equivariant to the hidden
permutations, at a fraction of the cost of "hnp"/"unf", which fold the fixed
input/output axes into their channel mixing.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..nn.models import LAYERS
from ..spec import WeightSpec
from .embed import ScalarEmbedding


class EquivariantDenoiser(nn.Module):
    """Predict the clean update from (noisy update, start, time, metrics), equivariantly.

    Args:
        spec: the checkpoints' spec.
        hidden: channels of the hidden equivariant layers (and the width of the conditioning).
        layers: equivariant layers (hidden layers = layers − 1).
        layer: "np", "hnp" or "unf" (`weightspace.nn.EquivariantNetwork`).
        layer_kwargs: passed to every layer (default io_embed=True for "np").

    Shapes:
        as `TransformerDenoiser`: noisy, start `key -> (B, *shape)`; t, metrics (B,).
    """

    def __init__(self, spec: WeightSpec, hidden: int = 32, layers: int = 4, *, layer: str = "np", **layer_kwargs):
        super().__init__()
        if layer not in LAYERS:
            raise ConfigError(f"unknown layer kind {layer!r}; expected one of {sorted(LAYERS)}")
        if hidden < 1 or layers < 2:
            raise ConfigError(f"EquivariantDenoiser: hidden must be >= 1 and layers >= 2, got {hidden}, {layers}")
        if layer == "np":
            layer_kwargs.setdefault("io_embed", True)
        linear = LAYERS[layer][0]
        widths = [2, *([hidden] * (layers - 1)), 1]
        self.spec, self.kind, self.hidden, self.layer_kwargs = spec, layer, hidden, dict(layer_kwargs)
        self.stack = nn.ModuleList(linear(spec, a, b, **layer_kwargs) for a, b in zip(widths[:-1], widths[1:]))
        self.codec = self.stack[0].codec
        probe = self.codec.encode({k: torch.zeros(1, hidden, *e.shape) for k, e in spec.entries.items()}, hidden)
        self.encoded_keys = list(probe)
        self.time = ScalarEmbedding(hidden, 1000.0)
        self.start_metric = ScalarEmbedding(hidden, 100.0)
        self.target_metric = ScalarEmbedding(hidden, 100.0)
        self.cond = nn.Sequential(nn.SiLU(), nn.Linear(3 * hidden, hidden), nn.SiLU())
        self.film = nn.ModuleList(nn.Linear(hidden, 2 * hidden * len(self.encoded_keys)) for _ in range(layers - 1))
        self.activation = nn.SiLU()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for film in self.film:
                film.weight.zero_()
                film.bias.zero_()
            for p in self.stack[-1].parameters():
                p.zero_()

    def _film(self, z: dict[str, torch.Tensor], params: torch.Tensor) -> dict[str, torch.Tensor]:
        """z[k] (B, *perm, C·F), channel-major in its last dim, times (1 + γ) plus β per channel."""
        b, c = params.shape[0], self.hidden
        gb = params.reshape(b, len(self.encoded_keys), 2, c)
        out = {}
        for i, k in enumerate(self.encoded_keys):
            t = z[k]
            lead = t.shape[1:-1]
            v = t.reshape(b, *lead, c, t.shape[-1] // c)
            shape = (b, *([1] * len(lead)), c, 1)
            out[k] = (v * (1 + gb[:, i, 0].reshape(shape)) + gb[:, i, 1].reshape(shape)).reshape(t.shape)
        return out

    def forward(self, noisy, start, t, start_metric, target_metric) -> dict[str, torch.Tensor]:
        x = {k: torch.stack([noisy[k], start[k]], dim=1) for k in self.spec.entries}
        cond = self.cond(torch.cat([self.time(t), self.start_metric(start_metric), self.target_metric(target_metric)], -1))
        z = self.codec.encode(x, 2, where="EquivariantDenoiser input")
        for i, lay in enumerate(self.stack):
            y = lay.forward_encoded(z)
            if i < len(self.stack) - 1:
                y = {k: self.activation(v) for k, v in self._film(y, self.film[i](cond)).items()}
                if i > 0:
                    y = {k: y[k] + z[k] for k in y}
            z = y
        return {k: v[:, 0] for k, v in self.codec.decode(z).items()}

    def __repr__(self) -> str:
        widths = [2] + [lay.out_channels for lay in self.stack]
        return f"EquivariantDenoiser({self.kind}, channels {widths}, FiLM on {len(self.encoded_keys)} tensors)"
