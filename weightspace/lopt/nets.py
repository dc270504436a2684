"""Meta-networks of learned optimizers: per-parameter MLP, Deep Set, and Deep Set over groups.

Every meta-network maps per-entry features `key -> (B, C, *entry.shape)` to per-entry
outputs `key -> (B, out_channels, *entry.shape)`, given the task model's spec (or
None when it needs none). Their weights do not depend on the task's architecture,
so one meta-network optimizes any model.

- `PerParameterMLP` (Metz et al. 2022, small_fc_lopt): one MLP applied to each scalar
  parameter's feature vector independently.
- `DeepSetMLP`: each layer adds, to every element, a linear map of the mean of its
  tensor's hidden features (a Deep Set per tensor; Zaheer et al. 2017).
- `GroupContextMLP`: a Deep Set over the spec's permutation groups. Each layer adds
  to the tensor context, for every permuted factor of an entry, the hidden features
  pooled over the group's units (mean over the other factors, then over every member
  of the group in every entry), broadcast back along that factor. Units of the same
  group in different tensors (a neuron's incoming row and outgoing column) therefore
  share information, and the map commutes with the spec's permutations.
"""
from __future__ import annotations

from math import prod, sqrt

import torch
from torch import nn

from ..errors import ConfigError, LoptError, SpecError
from ..spec import WeightSpec

Features = dict[str, torch.Tensor]


def _check_channels(x: Features, channels: int, where: str) -> None:
    for key, t in x.items():
        if t.dim() < 2 or t.shape[1] != channels:
            raise LoptError(f"{where}: features of {key!r} must be (B, {channels}, *shape), got {tuple(t.shape)}")


def _pointwise(layer: nn.Linear, t: torch.Tensor) -> torch.Tensor:
    """Apply `layer` to the channel dim 1 of (B, C, *shape)."""
    return layer(t.movedim(1, -1)).movedim(-1, 1)


def _folded_first_layer(layer: nn.Linear, raw: torch.Tensor, inv_rms: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
    """`layer` on every element's cat([raw * inv_rms, time]) without building it: (out, N), channel-major.

    The per-tensor normalizers scale the weight's columns and the (constant) time
    channels fold into the bias, so the matmul reads the R raw channels only, in the
    (R, N) layout they are built in (no transposes, no copies).
    """
    r = raw.shape[0]
    weight = layer.weight[:, :r] * inv_rms
    bias = layer.bias + layer.weight[:, r:] @ time
    return torch.addmm(bias.unsqueeze(1), weight, raw.reshape(r, -1))


def _channel_major(layer: nn.Linear, t: torch.Tensor) -> torch.Tensor:
    """`layer` on the columns of (in, N): (out, N)."""
    return torch.addmm(layer.bias.unsqueeze(1), layer.weight, t)


def _flat(x: Features) -> tuple[torch.Tensor, list[str], list[torch.Size]]:
    """Concatenate entries into (B, N, C) rows, one per scalar parameter."""
    keys = list(x)
    shapes = [x[k].shape for k in keys]
    rows = torch.cat([x[k].reshape(*x[k].shape[:2], -1).transpose(1, 2) for k in keys], dim=1)
    return rows, keys, shapes


def _unflat(rows: torch.Tensor, keys: list[str], shapes: list[torch.Size]) -> Features:
    sizes = [prod(s[2:]) for s in shapes]
    parts = torch.split(rows, sizes, dim=1)
    return {k: p.transpose(1, 2).reshape(s[0], rows.shape[-1], *s[2:]) for k, p, s in zip(keys, parts, shapes)}


class MetaNet(nn.Module):
    """Base class: per-entry features in, per-entry outputs out (see the module docstring).

    A subclass may define `forward_fused(raw, inv_rms, time, spec=None)` (the first three
    per key, as `features.raw_features` returns them; output key -> (*shape), one channel): the
    same function as `forward` on one unbatched step, computed without materializing
    the normalized (C, *shape) features. `LearnedRule` uses it when present.
    """

    kind = "base"

    def __init__(self, in_channels: int, hidden: int, layers: int, out_channels: int):
        super().__init__()
        if min(in_channels, hidden, layers, out_channels) < 1:
            raise ConfigError(
                f"{type(self).__name__}: channels and layers must be positive, got in={in_channels}, "
                f"hidden={hidden}, layers={layers}, out={out_channels}"
            )
        self.in_channels, self.hidden, self.layers, self.out_channels = in_channels, hidden, layers, out_channels

    def config(self) -> dict:
        """Constructor arguments, JSON-serializable (saved beside the weights)."""
        return {
            "in_channels": self.in_channels,
            "hidden": self.hidden,
            "layers": self.layers,
            "out_channels": self.out_channels,
        }

    def reset_head(self, head: nn.Linear, scale: float = 1e-3) -> None:
        """Start the output near zero, so the optimizer starts as its nominal term."""
        with torch.no_grad():
            head.weight.normal_(0.0, scale / sqrt(head.in_features))
            head.bias.zero_()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.in_channels} -> {self.hidden} x {self.layers} -> "
            f"{self.out_channels})"
        )


class PerParameterMLP(MetaNet):
    """An MLP on each scalar parameter's features, shared by all parameters.

    Shapes: input `key -> (B, C, *shape)`; output `key -> (B, out_channels, *shape)`.
    """

    kind = "mlp"

    def __init__(self, in_channels: int, hidden: int = 32, layers: int = 2, out_channels: int = 1):
        super().__init__(in_channels, hidden, layers, out_channels)
        widths = [in_channels] + [hidden] * layers
        self.body = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.head = nn.Linear(hidden, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.body:
            layer.reset_parameters()
        self.reset_head(self.head)

    def forward(self, x: Features, spec: WeightSpec | None = None) -> Features:
        _check_channels(x, self.in_channels, type(self).__name__)
        rows, keys, shapes = _flat(x)
        for layer in self.body:
            rows = torch.relu(layer(rows))
        return _unflat(self.head(rows), keys, shapes)

    def forward_fused(
        self, raw: Features, inv_rms: Features, time: Features, spec: WeightSpec | None = None
    ) -> Features:
        """`forward` of one unbatched step from `raw_features` (see `MetaNet`); output key -> (*shape)."""
        if self.out_channels != 1:
            raise LoptError(f"{type(self).__name__}.forward_fused writes one channel, the net has {self.out_channels}")
        keys = list(raw)
        first = [torch.relu_(_folded_first_layer(self.body[0], raw[k], inv_rms[k], time[k])) for k in keys]
        cols = torch.cat(first, dim=1) if len(first) > 1 else first[0]
        for layer in self.body[1:]:
            cols = torch.relu_(_channel_major(layer, cols))
        out = _channel_major(self.head, cols)[0]
        parts = torch.split(out, [raw[k][0].numel() for k in keys])
        return {k: p.reshape(raw[k].shape[1:]) for k, p in zip(keys, parts)}


class DeepSetMLP(MetaNet):
    """Per-parameter MLP whose every layer also reads its tensor's mean hidden features.

    Shapes: as `PerParameterMLP`.
    """

    kind = "deepset"

    def __init__(self, in_channels: int, hidden: int = 32, layers: int = 2, out_channels: int = 1):
        super().__init__(in_channels, hidden, layers, out_channels)
        widths = [in_channels] + [hidden] * layers
        self.body = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.pooled = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(widths[:-1], widths[1:]))
        self.head = nn.Linear(hidden, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in (*self.body, *self.pooled):
            layer.reset_parameters()
        self.reset_head(self.head)

    def forward(self, x: Features, spec: WeightSpec | None = None) -> Features:
        _check_channels(x, self.in_channels, type(self).__name__)
        h = dict(x)
        for layer, pool in zip(self.body, self.pooled):
            h = {
                k: torch.relu(
                    _pointwise(layer, t)
                    + pool(t.reshape(*t.shape[:2], -1).mean(-1)).reshape(t.shape[0], -1, *([1] * (t.dim() - 2)))
                )
                for k, t in h.items()
            }
        return {k: _pointwise(self.head, t) for k, t in h.items()}

    def forward_fused(
        self, raw: Features, inv_rms: Features, time: Features, spec: WeightSpec | None = None
    ) -> Features:
        """`forward` of one unbatched step from `raw_features` (see `MetaNet`); output key -> (*shape)."""
        if self.out_channels != 1:
            raise LoptError(f"{type(self).__name__}.forward_fused writes one channel, the net has {self.out_channels}")
        layer, pool = self.body[0], self.pooled[0]
        h = {}
        for k, r in raw.items():
            shape = r.shape[1:]
            mean = torch.cat([r.reshape(r.shape[0], -1).mean(1) * inv_rms[k], time[k]])
            y = _folded_first_layer(layer, r, inv_rms[k], time[k]) + pool(mean).unsqueeze(1)
            h[k] = torch.relu_(y).reshape(1, -1, *shape)
        for layer, pool in zip(self.body[1:], self.pooled[1:]):
            h = {
                k: torch.relu(
                    _pointwise(layer, t)
                    + pool(t.reshape(*t.shape[:2], -1).mean(-1)).reshape(t.shape[0], -1, *([1] * (t.dim() - 2)))
                )
                for k, t in h.items()
            }
        return {k: _pointwise(self.head, t)[0, 0] for k, t in h.items()}


class _GroupPlan:
    """Per entry: its factored shape and the (factor dim, group) of each permuted factor."""

    def __init__(self, spec: WeightSpec, keys: list[str]):
        missing = [k for k in keys if k not in spec.entries]
        if missing:
            raise SpecError(f"GroupContextMLP: features of {missing[:4]} have no entry in the spec")
        self.factored = {k: spec.entries[k].factored_shape for k in keys}
        self.members: dict[str, list[tuple[int, str]]] = {}
        for k in keys:
            factors = [f for axis in spec.entries[k].axes for f in axis]
            self.members[k] = [(d, f.group) for d, f in enumerate(factors) if f.group is not None]


class GroupContextMLP(MetaNet):
    """Deep Set over the spec's groups: per-parameter MLP + tensor and group contexts.

    Layer l maps hidden features h (B, H, *shape) of entry e to
    relu(W h + U mean_e(h) + V mean_{factors j of e} broadcast_j(c_{g_j})), where
    c_g (B, H, |g|) averages, over every member (entry, factor) of group g, h pooled
    over the member entry's other factors. The spec is read at call time, so the
    weights fit any architecture.

    Shapes: as `PerParameterMLP`; `spec` must describe every key of the input.
    """

    kind = "groups"

    def __init__(self, in_channels: int, hidden: int = 32, layers: int = 2, out_channels: int = 1):
        super().__init__(in_channels, hidden, layers, out_channels)
        widths = [in_channels] + [hidden] * layers
        pairs = list(zip(widths[:-1], widths[1:]))
        self.body = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)
        self.pooled = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in pairs)
        self.grouped = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in pairs)
        self.head = nn.Linear(hidden, out_channels)
        self._plans: dict[int, tuple[WeightSpec, tuple[str, ...], _GroupPlan]] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in (*self.body, *self.pooled, *self.grouped):
            layer.reset_parameters()
        self.reset_head(self.head)

    def _plan(self, spec: WeightSpec, keys: list[str]) -> _GroupPlan:
        cached = self._plans.get(id(spec))
        if cached is None or cached[1] != tuple(keys):
            cached = (spec, tuple(keys), _GroupPlan(spec, keys))
            self._plans[id(spec)] = cached
        return cached[2]

    @staticmethod
    def _group_means(h: Features, plan: _GroupPlan) -> dict[str, torch.Tensor]:
        """c_g (B, H, |g|): mean over members of h pooled to the member's factor."""
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        for k, t in h.items():
            if not plan.members[k]:
                continue
            view = t.reshape(*t.shape[:2], *plan.factored[k])
            nf = len(plan.factored[k])
            for d, g in plan.members[k]:
                others = tuple(2 + i for i in range(nf) if i != d)
                v = view.mean(dim=others) if others else view
                sums[g] = v if g not in sums else sums[g] + v
                counts[g] = counts.get(g, 0) + 1
        return {g: s / counts[g] for g, s in sums.items()}

    @staticmethod
    def _pooled(h: dict[str, torch.Tensor], plan: _GroupPlan) -> dict[str, torch.Tensor]:
        """c_g (H, |g|) from channel-major (H, N) hidden features: `_group_means` unbatched."""
        means = GroupContextMLP._group_means({k: t.unsqueeze(0) for k, t in h.items()}, plan)
        return {g: c[0] for g, c in means.items()}

    @staticmethod
    def _combine(
        pre: torch.Tensor, vec: torch.Tensor, key: str, plan: _GroupPlan, ctx: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """relu(pre + vec + mean over the entry's permuted factors of their group context), (H, N).

        `pre` (H, N) is the layer's per-element map without bias (overwritten), `vec` (H,)
        its bias plus tensor context, `ctx` group -> (H, |g|) the mapped group contexts.
        """
        members = plan.members[key]
        if not members:
            return torch.relu_(pre.add_(vec.unsqueeze(1)))
        factored = plan.factored[key]
        y = pre.reshape(pre.shape[0], *factored)
        for i, (d, g) in enumerate(members):
            view = [1] * len(factored)
            view[d] = factored[d]
            c = ctx[g] / len(members)
            if i == 0:  # the bias and tensor context ride on the first broadcast: one pass fewer
                c = c + vec.unsqueeze(1)
            y = y.add_(c.reshape(y.shape[0], *view))
        return torch.relu_(y.reshape(pre.shape))

    def forward_fused(
        self, raw: Features, inv_rms: Features, time: Features, spec: WeightSpec | None = None
    ) -> Features:
        """`forward` of one unbatched step from `raw_features` (see `MetaNet`); output key -> (*shape).

        Channel-major throughout, biases and time folded into per-channel vectors. The
        first layer's tensor and group maps are linear, so they read the raw channels
        pooled over the tensor and over each member's other factors (normalizers folded
        into the columns): only the per-element map is a matmul over every element
        (a 3H-row matmul costs several H-row ones on CPU BLAS). Later layers pool their
        input first and map the pooled (H,) and (H, |g|) statistics the same way.
        """
        if spec is None:
            raise LoptError("GroupContextMLP needs the task model's spec (pass spec=...)")
        if self.out_channels != 1:
            raise LoptError(f"{type(self).__name__}.forward_fused writes one channel, the net has {self.out_channels}")
        plan = self._plan(spec, list(raw))
        own, tensor, group = self.body[0], self.pooled[0], self.grouped[0]
        pre, vec, sums, counts = {}, {}, {}, {}
        for k, r in raw.items():
            n, factored = r.shape[0], plan.factored[k]
            flat = r.reshape(n, -1)
            pre[k] = (own.weight[:, :n] * inv_rms[k]) @ flat
            pooled = []
            if plan.members[k]:
                view = r.reshape(n, *factored)
                mapped, shift = group.weight[:, :n] * inv_rms[k], group.weight[:, n:] @ time[k]
                for d, g in plan.members[k]:
                    others = tuple(1 + i for i in range(len(factored)) if i != d)
                    pooled.append(view.mean(dim=others) if others else view)
                    c = mapped @ pooled[-1] + shift.unsqueeze(1)
                    sums[g] = c if g not in sums else sums[g] + c
                    counts[g] = counts.get(g, 0) + 1
            mean = pooled[0].mean(1) if pooled else flat.mean(1)
            vec[k] = own.bias + own.weight[:, n:] @ time[k] + (tensor.weight[:, :n] * inv_rms[k]) @ mean
            vec[k] = vec[k] + tensor.weight[:, n:] @ time[k]
        ctx = {g: c / counts[g] for g, c in sums.items()}
        h = {k: self._combine(pre[k], vec[k], k, plan, ctx) for k in raw}
        for layer, pool, group in zip(self.body[1:], self.pooled[1:], self.grouped[1:]):
            ctx = {g: group.weight @ c for g, c in self._pooled(h, plan).items()}
            h = {
                k: self._combine(layer.weight @ t, layer.bias + pool.weight @ t.mean(1), k, plan, ctx)
                for k, t in h.items()
            }
        return {k: _channel_major(self.head, t)[0].reshape(raw[k].shape[1:]) for k, t in h.items()}

    def forward(self, x: Features, spec: WeightSpec | None = None) -> Features:
        if spec is None:
            raise LoptError("GroupContextMLP needs the task model's spec (pass spec=...)")
        _check_channels(x, self.in_channels, type(self).__name__)
        plan = self._plan(spec, list(x))
        h = dict(x)
        for layer, pool, group in zip(self.body, self.pooled, self.grouped):
            ctx = {g: group(c.transpose(1, 2)).transpose(1, 2) for g, c in self._group_means(h, plan).items()}
            out = {}
            for k, t in h.items():
                b, shape, factored = t.shape[0], t.shape[2:], plan.factored[k]
                y = _pointwise(layer, t) + pool(t.reshape(*t.shape[:2], -1).mean(-1)).reshape(b, -1, *([1] * len(shape)))
                members = plan.members[k]
                if members:
                    y = y.reshape(b, -1, *factored)
                    nf = len(factored)
                    extra = 0
                    for d, g in members:
                        view = [1] * nf
                        view[d] = factored[d]
                        extra = extra + ctx[g].reshape(b, -1, *view)
                    y = (y + extra / len(members)).reshape(b, -1, *shape)
                out[k] = torch.relu(y)
            h = out
        return {k: _pointwise(self.head, t) for k, t in h.items()}
