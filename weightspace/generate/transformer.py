"""`TransformerDenoiser`: G.pt's denoiser, the reference (Peebles et al., 2022).

Every entry of the spec is flattened and cut into tokens of `chunk` numbers (a
tensor smaller than a chunk is one token; the last token of a tensor is
zero-padded). Each token position has its own linear encoder, reading the token's
noisy update and start values side by side, and its own linear decoder (the
per-parameter output), as in G.pt. Three more tokens carry the diffusion time and
the start and target metrics. A learned position embedding, a pre-norm
`torch.nn.TransformerEncoder`, and the decoders (zero-initialized, so the model
starts by predicting Δ = 0). Per-position weights make the model blind to the
spec's symmetry: permuting hidden units changes its output (the negative control
of the equivariance tests).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..spec import WeightSpec
from .embed import ScalarEmbedding


class TransformerDenoiser(nn.Module):
    """Predict the clean update from (noisy update, start, time, metrics) with per-layer tokens.

    Args:
        spec: the checkpoints' spec.
        hidden: the token width (d_model).
        layers: transformer layers.
        heads: attention heads.
        chunk: numbers per token.

    Shapes:
        noisy, start: `key -> (B, *shape)`; t, start_metric, target_metric: (B,) (t in [0, 1],
        metrics standardized); output `key -> (B, *shape)`.
    """

    def __init__(self, spec: WeightSpec, hidden: int = 64, layers: int = 4, *, heads: int = 4, chunk: int = 64):
        super().__init__()
        if hidden < 1 or layers < 1 or chunk < 1 or heads < 1 or hidden % heads:
            raise ConfigError(
                f"TransformerDenoiser: hidden ({hidden}) must be a positive multiple of heads ({heads}); "
                f"layers ({layers}) and chunk ({chunk}) positive"
            )
        self.spec, self.hidden, self.chunk = spec, hidden, chunk
        self.sizes = {k: math.prod(e.shape) for k, e in spec.entries.items()}
        self.tokens = {k: max(1, -(-n // chunk)) for k, n in self.sizes.items()}
        n = sum(self.tokens.values())
        self.n_tokens = n
        self.enc_weight = nn.Parameter(torch.empty(n, 2 * chunk, hidden))
        self.enc_bias = nn.Parameter(torch.zeros(n, hidden))
        self.dec_weight = nn.Parameter(torch.zeros(n, hidden, chunk))
        self.dec_bias = nn.Parameter(torch.zeros(n, chunk))
        self.time = ScalarEmbedding(hidden, 1000.0)
        self.start_metric = ScalarEmbedding(hidden, 100.0)
        self.target_metric = ScalarEmbedding(hidden, 100.0)
        self.position = nn.Parameter(torch.zeros(n + 3, hidden))
        block = nn.TransformerEncoderLayer(
            hidden, heads, 4 * hidden, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.layers, self.heads = layers, heads
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.enc_weight.normal_(0.0, 1.0 / math.sqrt(2 * self.chunk))
            self.enc_bias.zero_()
            self.position.normal_(0.0, 0.02)
            self.dec_weight.zero_()
            self.dec_bias.zero_()

    def _tokens(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """`key -> (B, *shape)` -> (B, n_tokens, chunk), zero-padded per entry."""
        parts = []
        for k, size in self.sizes.items():
            flat = x[k].reshape(x[k].shape[0], size)
            pad = self.tokens[k] * self.chunk - size
            if pad:
                flat = torch.nn.functional.pad(flat, (0, pad))
            parts.append(flat.reshape(flat.shape[0], self.tokens[k], self.chunk))
        return torch.cat(parts, dim=1)

    def forward(self, noisy, start, t, start_metric, target_metric) -> dict[str, torch.Tensor]:
        x = torch.cat([self._tokens(noisy), self._tokens(start)], dim=-1)  # (B, n, 2·chunk)
        h = torch.einsum("bnc,ncd->bnd", x, self.enc_weight) + self.enc_bias
        cond = torch.stack([self.time(t), self.start_metric(start_metric), self.target_metric(target_metric)], dim=1)
        h = self.encoder(torch.cat([cond, h], dim=1) + self.position)
        h = self.norm(h[:, 3:])
        y = torch.einsum("bnd,ndc->bnc", h, self.dec_weight) + self.dec_bias
        out, at = {}, 0
        for k, size in self.sizes.items():
            n = self.tokens[k]
            out[k] = y[:, at : at + n].reshape(y.shape[0], n * self.chunk)[:, :size].reshape(-1, *self.spec.entries[k].shape)
            at += n
        return out

    def __repr__(self) -> str:
        return (
            f"TransformerDenoiser({self.n_tokens} weight tokens of {self.chunk} + 3 condition tokens, "
            f"d={self.hidden}, {self.layers} layers, {self.heads} heads)"
        )
