"""NFN layers (Zhou et al., *Permutation Equivariant Neural Functionals*, NeurIPS 2023).

For a feed-forward chain (MLP or CNN, `ChainLayout`):

- `NPLinear`: equivariant to permutations of *every* layer's neurons, model input and
  output neurons included (the paper's NP group, larger than the true one). Written
  out by hand: per layer a pointwise map, then row/column/global means broadcast
  back. Every term whose reduced input lives on the same neurons shares one matmul,
  so a layer costs L + (L+1) + 1 matmuls. `io_embed=True` adds learned embeddings on
  the input and output neurons to break the extra symmetry, as in the paper.
- `HNPLinear`: equivariant to hidden-neuron permutations only (the true group, the
  paper's HNP). It is *all* equivariant linear maps of the chain's weight space, which
  is exactly what `UNFLinear` generates from the spec, so it is that layer restricted
  to chain specs (Navon et al.'s DWS layers span the same maps: both are maximal).
- `NPPool`: the NP-invariant pooling (mean of every weight and vector over neurons).

Initialization follows `unf`: coefficients N(0, gain²/fan_in) with fan_in the total
length of the term inputs feeding an output, biases zero.
"""
from __future__ import annotations

from math import sqrt

import torch
from torch import nn

from ..errors import ConfigError
from ..spec import WeightSpec
from .batch import as_features, check_features
from .chain import ChainLayout
from .unf import UNFLinear, UNFPool

Encoded = dict[str, torch.Tensor]


class ChainCodec:
    """Features <-> per-layer tensors: weights (B, n_out, n_in, C·F), vectors (B, n_out, C·V)."""

    def __init__(self, spec: WeightSpec):
        self.spec = spec
        self.chain = ChainLayout.from_spec(spec)

    def encode(self, x, channels: int | None = None, where: str = "NFN") -> Encoded:
        x = as_features(x)
        check_features(self.spec, x, channels, where)
        out: Encoded = {}
        for i, layer in enumerate(self.chain.layers):
            w = x[layer.weight]
            b, c = w.shape[:2]
            w = w.reshape(b, c, layer.n_out, layer.n_in, layer.filter_size)
            out[f"w{i}"] = w.permute(0, 2, 3, 1, 4).reshape(b, layer.n_out, layer.n_in, c * layer.filter_size)
            if layer.vectors:
                v = torch.stack([x[k] for k in layer.vectors], dim=-1)  # (B, C, n_out, V)
                out[f"v{i}"] = v.permute(0, 2, 1, 3).reshape(b, layer.n_out, c * len(layer.vectors))
        return out

    def decode(self, z: Encoded) -> dict[str, torch.Tensor]:
        out = {}
        for i, layer in enumerate(self.chain.layers):
            w = z[f"w{i}"]
            b = w.shape[0]
            c = w.shape[-1] // layer.filter_size
            w = w.reshape(b, layer.n_out, layer.n_in, c, layer.filter_size).permute(0, 3, 1, 2, 4)
            out[layer.weight] = w.reshape(b, c, *self.spec.entries[layer.weight].shape)
            if layer.vectors:
                nv = len(layer.vectors)
                v = z[f"v{i}"].reshape(b, layer.n_out, c, nv)
                for j, k in enumerate(layer.vectors):
                    out[k] = v[..., j].transpose(1, 2)
        return out


class NPLinear(nn.Module):
    """NFN-NP equivariant linear layer for MLP/CNN chains (see the module docstring).

    Args:
        spec: a chain spec (`ChainLayout.from_spec` must accept it).
        in_channels, out_channels: C_in, C_out.
        io_embed: add learned embeddings on input/output neurons (breaks the NP-only symmetry).
        gain: initialization scale.

    Shapes:
        input `key -> (B, C_in, *shape)`, output `key -> (B, C_out, *shape)`.
    """

    def __init__(self, spec: WeightSpec, in_channels: int, out_channels: int, *, io_embed: bool = False, gain: float = 1.0):
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ConfigError(f"NPLinear: channels must be positive, got {in_channels} -> {out_channels}")
        self.spec, self.in_channels, self.out_channels, self.gain = spec, in_channels, out_channels, gain
        self.codec = ChainCodec(spec)
        layers = self.codec.chain.layers
        L = len(layers)
        ci, co = in_channels, out_channels
        f = [layer.filter_size for layer in layers]
        nv = [len(layer.vectors) for layer in layers]
        # inputs indexed by neuron set k (k = 0: model inputs, k = i + 1: outputs of layer i)
        self._node_in = [[(("row", k), ci * f[k])] if k < L else [] for k in range(L + 1)]
        self._node_out = [[] for _ in range(L + 1)]
        for k in range(1, L + 1):
            self._node_in[k] += [(("col", k - 1), ci * f[k - 1])] + ([(("vec", k - 1), ci * nv[k - 1])] if nv[k - 1] else [])
        for k in range(L + 1):
            if k < L:
                self._node_out[k].append((("w_in", k), co * f[k]))
            if k >= 1:
                self._node_out[k].append((("w_out", k - 1), co * f[k - 1]))
                if nv[k - 1]:
                    self._node_out[k].append((("vec", k - 1), co * nv[k - 1]))
        self._global_in = [(("w", i), ci * f[i]) for i in range(L)] + [(("v", i), ci * nv[i]) for i in range(L) if nv[i]]
        self._global_out = [(("w", i), co * f[i]) for i in range(L)] + [(("v", i), co * nv[i]) for i in range(L) if nv[i]]
        total = lambda parts: sum(n for _, n in parts)  # noqa: E731
        self.pointwise = nn.ParameterList([nn.Parameter(torch.empty(ci * f[i], co * f[i])) for i in range(L)])
        self.node_mix = nn.ParameterList(
            [nn.Parameter(torch.empty(total(self._node_in[k]), total(self._node_out[k]))) for k in range(L + 1)]
        )
        self.global_mix = nn.Parameter(torch.empty(total(self._global_in), total(self._global_out)))
        self.w_bias = nn.ParameterList([nn.Parameter(torch.zeros(co * f[i])) for i in range(L)])
        self.v_bias = nn.ParameterList([nn.Parameter(torch.zeros(co * nv[i])) for i in range(L)])
        self.io_embed = io_embed
        if io_embed:
            first, last = layers[0], layers[-1]
            self.in_embed = nn.Parameter(torch.randn(first.n_in, ci * f[0]) * 0.1)
            self.out_embed = nn.Parameter(torch.randn(last.n_out, ci * f[-1]) * 0.1)
            self.out_vec_embed = nn.Parameter(torch.randn(last.n_out, ci * nv[-1]) * 0.1) if nv[-1] else None
        self.reset_parameters()

    def _fan_in(self) -> dict[tuple, int]:
        fan: dict[tuple, int] = {}
        g_in = sum(n for _, n in self._global_in)
        for i, p in enumerate(self.pointwise):
            fan[("w", i)] = p.shape[0] + g_in
        for i, b in enumerate(self.v_bias):
            if b.numel():
                fan[("v", i)] = g_in
        for k in range(len(self._node_in)):
            n_in = sum(n for _, n in self._node_in[k])
            for (kind, i), _ in self._node_out[k]:
                fan[("v" if kind == "vec" else "w", i)] += n_in
        return fan

    def reset_parameters(self) -> None:
        fan = self._fan_in()
        std = lambda name: self.gain / sqrt(max(fan[name], 1))  # noqa: E731
        with torch.no_grad():
            for i, p in enumerate(self.pointwise):
                p.normal_(0.0, std(("w", i)))
            for k, p in enumerate(self.node_mix):
                col = 0
                for (kind, i), n in self._node_out[k]:
                    p[:, col : col + n].normal_(0.0, std(("v" if kind == "vec" else "w", i)))
                    col += n
            col = 0
            for name, n in self._global_out:
                self.global_mix[:, col : col + n].normal_(0.0, std(name))
                col += n
            for b in (*self.w_bias, *self.v_bias):
                b.zero_()

    def forward_encoded(self, z: Encoded) -> Encoded:
        L = len(self.pointwise)
        w = [z[f"w{i}"] for i in range(L)]
        v = [z.get(f"v{i}") for i in range(L)]
        if self.io_embed:
            w[0] = w[0] + self.in_embed[None, None]
            w[-1] = w[-1] + self.out_embed[None, :, None]
            if self.out_vec_embed is not None:
                v[-1] = v[-1] + self.out_vec_embed
        # sums then a scale on the small result: the backward of a sum is a free expand,
        # the backward of a mean would write a full-size tensor
        rows = [t.sum(1) * (1.0 / t.shape[1]) for t in w]  # (B, n_in, CF): indexed by layer i's inputs
        cols = [t.sum(2) * (1.0 / t.shape[2]) for t in w]  # (B, n_out, CF): indexed by layer i's outputs
        feats = {"row": rows, "col": cols, "vec": v}
        glob = torch.cat([cols[i].mean(1) for i in range(L)] + [t.mean(1) for t in v if t is not None], dim=-1)
        g_out = torch.split(glob @ self.global_mix, [n for _, n in self._global_out], dim=-1)
        # small terms: (B, n_out, K) on each weight's output neurons, (B, n_in, K) on its inputs
        w_out: list = [self.w_bias[i] for i in range(L)]
        w_in: list = [None] * L
        out_v = [self.v_bias[i] for i in range(L)]
        for ((kind, i), _), piece in zip(self._global_out, g_out):
            if kind == "w":
                w_out[i] = w_out[i] + piece[:, None]
            else:
                out_v[i] = out_v[i] + piece[:, None]
        for k, mix in enumerate(self.node_mix):
            parts = [feats[kind][i] for (kind, i), _ in self._node_in[k]]
            node = (parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)) @ mix
            pieces = torch.split(node, [n for _, n in self._node_out[k]], dim=-1)
            for ((kind, i), _), piece in zip(self._node_out[k], pieces):
                if kind == "w_in":
                    w_in[i] = piece if w_in[i] is None else w_in[i] + piece
                elif kind == "w_out":
                    w_out[i] = w_out[i] + piece
                else:
                    out_v[i] = out_v[i] + piece
        out_w = []
        for i in range(L):
            full = w[i] @ self.pointwise[i] + w_out[i][:, :, None]
            out_w.append(full if w_in[i] is None else full + w_in[i][:, None])
        out = {f"w{i}": out_w[i] for i in range(L)}
        out.update({f"v{i}": out_v[i] for i in range(L) if v[i] is not None})
        return out

    def forward(self, x) -> dict[str, torch.Tensor]:
        """`key -> (B, C_in, *shape)` (a dict or `WeightSpaceBatch`) to `key -> (B, C_out, *shape)`."""
        z = self.codec.encode(x, self.in_channels, where="NPLinear input")
        return self.codec.decode(self.forward_encoded(z))

    def __repr__(self) -> str:
        return (
            f"NPLinear({len(self.pointwise)} layers, {self.in_channels} -> {self.out_channels} channels"
            f"{', io_embed' if self.io_embed else ''})"
        )


class NPPool(nn.Module):
    """NP-invariant pooling: the mean of every layer's weight and vectors over its neurons.

    Shapes: input encoded by `ChainCodec`; output (B, out_features).
    """

    def __init__(self, spec: WeightSpec, channels: int):
        super().__init__()
        self.spec, self.channels = spec, channels
        self.codec = ChainCodec(spec)
        layers = self.codec.chain.layers
        self.out_features = channels * sum(layer.filter_size + len(layer.vectors) for layer in layers)

    def forward_encoded(self, z: Encoded) -> torch.Tensor:
        L = len(self.codec.chain.layers)
        parts = [z[f"w{i}"].sum((1, 2)) * (1.0 / (z[f"w{i}"].shape[1] * z[f"w{i}"].shape[2])) for i in range(L)]
        parts += [z[f"v{i}"].mean(1) for i in range(L) if f"v{i}" in z]
        return torch.cat(parts, dim=-1)

    def forward(self, x) -> torch.Tensor:
        return self.forward_encoded(self.codec.encode(x, self.channels, where="NPPool input"))

    def __repr__(self) -> str:
        return f"NPPool({len(self.codec.chain.layers)} layers, {self.channels} channels -> {self.out_features} features)"


class HNPLinear(UNFLinear):
    """NFN-HNP layer: every linear map equivariant to hidden-neuron permutations of a chain.

    The UNF basis of a chain spec (input/output neurons fixed, mixed densely with the
    channels); accepts only specs `ChainLayout` reads, so that it means what the paper's
    HNP layer means. Arguments as `UNFLinear`.
    """

    def __init__(self, spec: WeightSpec, in_channels: int, out_channels: int, *, gain: float = 1.0):
        ChainLayout.from_spec(spec)
        super().__init__(spec, in_channels, out_channels, gain=gain)


class HNPPool(UNFPool):
    """NFN-HNP invariant pooling: means over hidden neurons, input/output neurons kept."""

    def __init__(self, spec: WeightSpec, channels: int):
        ChainLayout.from_spec(spec)
        super().__init__(spec, channels)
