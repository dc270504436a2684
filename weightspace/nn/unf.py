"""`UNFLinear`: the learnable equivariant linear layer over any spec (Universal Neural Functionals).

Zhou et al., *Universal Neural Functionals* (2024). The layer maps features
`key -> (B, C_in, *shape)` to `key -> (B, C_out, *shape)` as

    y[O] = Σ_{terms I→O} mix_term( reduce_term(x[I]) ) + bias[O]

where `reduce_term` takes generalized diagonals and averages indices (see
`unf_basis`), and `mix_term` is a dense matrix over (channels × fixed factors). Terms
whose reduced inputs keep the same indices and feed the same set of outputs share
one matmul: the reduced inputs are concatenated along channels, so a layer runs a
handful of matmuls whatever the number of terms.

Initialization: every coefficient is N(0, gain² / fan_in[O]) with fan_in[O] the sum,
over the terms feeding output O, of the length C_in·F_in of the vector each term
reads (a LeCun rule over the concatenated term inputs; averaging never increases the
variance, so outputs start at most at the input scale). Biases start at zero.
"""
from __future__ import annotations

from math import sqrt
from typing import Callable, Mapping

import torch
from torch import nn

from ..errors import ConfigError
from ..spec import WeightSpec
from .batch import as_features, check_features
from .layout import EntryLayout, diagonal, embed_diagonal
from .unf_basis import Term, UNFBasis, pool_partitions

Encoded = dict[str, torch.Tensor]


class UNFCodec:
    """Encode/decode features between channels-first dicts and the per-entry canonical layout."""

    def __init__(self, spec: WeightSpec):
        self.spec = spec
        self.layouts = {k: EntryLayout.of(e) for k, e in spec.entries.items()}

    def encode(self, x: Mapping[str, torch.Tensor], channels: int | None = None, where: str = "UNF") -> Encoded:
        x = as_features(x)
        check_features(self.spec, x, channels, where)
        return {k: lay.encode(x[k]) for k, lay in self.layouts.items()}

    def decode(self, z: Encoded) -> dict[str, torch.Tensor]:
        return {k: lay.decode(z[k]) for k, lay in self.layouts.items()}


class _Reduction:
    """Diagonal over `blocks`, then mean over the `pooled` blocks of an encoded entry."""

    def __init__(self, key: str, blocks: tuple[tuple[int, ...], ...], pooled: tuple[int, ...]):
        self.key, self.blocks, self.pooled = key, blocks, pooled
        self.kept = tuple(i for i in range(len(blocks)) if i not in pooled)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        v = diagonal(t, self.blocks)
        if not self.pooled:
            return v
        dims = tuple(1 + i for i in self.pooled)
        count = 1
        for d in dims:
            count *= v.shape[d]
        # a sum then a scale of the small result: its backward is a free expand
        return v.sum(dim=dims) * (1.0 / count)


class UNFLinear(nn.Module):
    """Equivariant linear layer generated from a spec's partition basis.

    Args:
        spec: the weight space (see `metanet_spec`); the layer reads and writes every entry.
        in_channels, out_channels: C_in, C_out.
        bias: add an invariant bias per output entry (constant over permuted indices).
        dedupe, max_shared, term_filter: which basis terms to use (see `UNFBasis`).
        gain: scale of the initialization (see the module docstring).

    Shapes:
        input: `key -> (B, C_in, *entry.shape)`; output: `key -> (B, C_out, *entry.shape)`.
    """

    def __init__(
        self,
        spec: WeightSpec,
        in_channels: int,
        out_channels: int,
        *,
        bias: bool = True,
        dedupe: bool = True,
        max_shared: int | None = None,
        term_filter: Callable[[Term], bool] | None = None,
        gain: float = 1.0,
    ):
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ConfigError(f"UNFLinear: channels must be positive, got {in_channels} -> {out_channels}")
        self.spec = spec
        self.in_channels, self.out_channels = in_channels, out_channels
        self.basis = UNFBasis(spec, dedupe=dedupe, max_shared=max_shared, term_filter=term_filter)
        self.codec = UNFCodec(spec)
        self.gain = gain
        self._compile()
        self.bias = nn.ParameterDict() if bias else None
        if bias:
            for i, (k, lay) in enumerate(self.codec.layouts.items()):
                self.bias[f"b{i}"] = nn.Parameter(torch.zeros(out_channels * lay.fixed_size))
        self.reset_parameters()

    # ------------------------------------------------------------------ plan
    def _compile(self) -> None:
        layouts = self.codec.layouts
        group_rank = {g: i for i, g in enumerate(self.spec.groups)}
        reductions: dict[tuple, int] = {}
        targets: dict[tuple, list[tuple[int, tuple[int, ...]]]] = {}
        self.fan_in: dict[str, int] = {k: 0 for k in layouts}
        for t in self.basis.terms:
            rid = reductions.setdefault((t.in_key, t.in_blocks, t.pooled), len(reductions))
            red_kept = [i for i in range(len(t.in_blocks)) if i not in t.pooled]
            out_of = dict(t.links)
            out_groups = [layouts[t.out_key].perm_groups[b[0]] for b in t.out_blocks]
            shared = sorted(out_of.values(), key=lambda o: (group_rank[out_groups[o]], o))
            in_of = {o: i for i, o in out_of.items()}
            perm = tuple(red_kept.index(in_of[o]) for o in shared)
            targets.setdefault((t.out_key, t.out_blocks, tuple(shared)), []).append((rid, perm))
            self.fan_in[t.out_key] += self.in_channels * layouts[t.in_key].fixed_size
        self._reductions = [_Reduction(k, b, p) for (k, b, p) in reductions]
        mixes: dict[tuple, list[tuple]] = {}
        for target, contribs in targets.items():
            mixes.setdefault(tuple(contribs), []).append(target)
        self._mixes = []
        self.mix_weights = nn.ParameterList()
        for contribs, tlist in mixes.items():
            k_in = sum(self.in_channels * layouts[self._reductions[r].key].fixed_size for r, _ in contribs)
            outs = [(tg, self.out_channels * layouts[tg[0]].fixed_size) for tg in tlist]
            self._mixes.append((contribs, outs))
            self.mix_weights.append(nn.Parameter(torch.empty(k_in, sum(k for _, k in outs))))
        self._outputs: dict[str, list[tuple]] = {k: [] for k in layouts}
        for out_key, out_blocks, _ in targets:
            if out_blocks not in self._outputs[out_key]:
                self._outputs[out_key].append(out_blocks)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for w, (_, outs) in zip(self.mix_weights, self._mixes):
                col = 0
                for (out_key, _, _), k in outs:
                    std = self.gain / sqrt(max(self.fan_in[out_key], 1))
                    w[:, col : col + k].normal_(0.0, std)
                    col += k
            if self.bias is not None:
                for b in self.bias.values():
                    b.zero_()

    # ------------------------------------------------------------------ forward
    def forward_encoded(self, z: Encoded) -> Encoded:
        """The layer on encoded features (see `UNFCodec`); used to chain layers cheaply."""
        layouts = self.codec.layouts
        reduced = [red(z[red.key]) for red in self._reductions]
        aligned: dict[tuple, torch.Tensor] = {}

        def align(rid: int, perm: tuple[int, ...]) -> torch.Tensor:
            key = (rid, perm)
            if key not in aligned:
                r = reduced[rid]
                identity = perm == tuple(range(len(perm)))
                aligned[key] = r if identity else r.permute(0, *(1 + p for p in perm), r.dim() - 1)
            return aligned[key]

        acc: dict[tuple, list[torch.Tensor]] = {}
        for w, (contribs, outs) in zip(self.mix_weights, self._mixes):
            parts = [align(r, p) for r, p in contribs]
            inp = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
            mixed = inp @ w
            pieces = torch.split(mixed, [k for _, k in outs], dim=-1) if len(outs) > 1 else (mixed,)
            for ((out_key, out_blocks, shared), _), piece in zip(outs, pieces):
                order = sorted(range(len(shared)), key=lambda j: shared[j])
                if order != list(range(len(shared))):
                    piece = piece.permute(0, *(1 + j for j in order), piece.dim() - 1)
                present = sorted(shared)
                for o in range(len(out_blocks)):
                    if o not in present:
                        piece = piece.unsqueeze(1 + o)
                acc.setdefault((out_key, out_blocks), []).append(piece)
        out: Encoded = {}
        batch = next(iter(z.values())).shape[0]
        for i, (key, lay) in enumerate(layouts.items()):
            total = None
            bias = self.bias[f"b{i}"] if self.bias is not None else None
            for out_blocks in self._outputs[key]:
                sizes = [lay.perm_sizes[b[0]] for b in out_blocks]
                # smallest first, so that broadcast terms combine before touching full-size tensors
                parts = sorted(acc[(key, out_blocks)], key=lambda t: t.numel())
                if bias is not None and all(len(b) == 1 for b in out_blocks):
                    parts[0], bias = parts[0] + bias, None  # off the diagonal too: constant everywhere
                a = parts[0]
                for t in parts[1:]:
                    a = a + t
                a = a.expand(a.shape[0], *sizes, a.shape[-1])
                a = embed_diagonal(a, out_blocks, lay.perm_sizes)
                total = a if total is None else total + a
            k_out = self.out_channels * lay.fixed_size
            if total is None:
                total = z[key].new_zeros(batch, *lay.perm_sizes, k_out)
            if bias is not None:
                total = total + bias
            out[key] = total
        return out

    def forward(self, x) -> dict[str, torch.Tensor]:
        """`key -> (B, C_in, *shape)` (a dict or `WeightSpaceBatch`) to `key -> (B, C_out, *shape)`."""
        z = self.codec.encode(x, self.in_channels, where="UNFLinear input")
        return self.codec.decode(self.forward_encoded(z))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self.spec.entries)} entries, {len(self.spec.groups)} groups, "
            f"{self.in_channels} -> {self.out_channels} channels, {len(self.basis)} terms in "
            f"{len(self._mixes)} matmuls)"
        )


class UNFPool(nn.Module):
    """Invariant pooling: every invariant linear map of every entry (UNF's invariant layer).

    Per entry, one feature vector of length C·F per partition of its permuted factors
    (generalized diagonal, then the mean over all of them): one plain mean unless a
    group acts on an entry twice (a recurrent matrix). Fixed factors are kept, so
    input pixels and class logits stay distinguishable.

    Shapes:
        input: encoded features (`UNFCodec.encode`); output: (B, out_features).
    """

    def __init__(self, spec: WeightSpec, channels: int, dedupe: bool = True):
        super().__init__()
        self.spec, self.channels = spec, channels
        self.codec = UNFCodec(spec)
        self._reductions = []
        for key in spec.entries:
            for blocks in pool_partitions(spec, key, dedupe):
                self._reductions.append(_Reduction(key, blocks, tuple(range(len(blocks)))))
        self.out_features = sum(channels * self.codec.layouts[r.key].fixed_size for r in self._reductions)

    def forward_encoded(self, z: Encoded) -> torch.Tensor:
        return torch.cat([red(z[red.key]) for red in self._reductions], dim=-1)

    def forward(self, x) -> torch.Tensor:
        return self.forward_encoded(self.codec.encode(x, self.channels, where="UNFPool input"))

    def __repr__(self) -> str:
        return f"UNFPool({len(self._reductions)} invariant maps, {self.channels} channels -> {self.out_features} features)"
