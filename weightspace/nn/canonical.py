"""Sign/scale canonicalization: metanetworks equivariant to a spec's extra symmetries.

Hidden units before an odd activation (sin, tanh) can flip sign, units before a
ReLU can be rescaled by s > 0, without changing the function (Godfrey et al. 2022;
ScaleGMN, Kalogeropoulos et al., NeurIPS 2024). The spec records where each
multiplier acts (`Group.extra_action`): s on the places that produce the unit
(power +1: a weight's rows, its bias), 1/s on those that consume it (power -1).

Construction: canonical inputs. For every group with an extra symmetry, in an order
where a group comes after every group acting on its producing entries, each unit
gets a statistic of its producing places (already canonical in the other groups):

- scale: r = the L2 norm of its producing places (bias and weight row together);
  dividing the unit by r (and multiplying its consumers by r) makes the norm 1.
- sign: t = the sum of its producing places; multiplying by sign(t) (sign(0) = +1)
  makes t >= 0.

The statistic of unit i moves exactly as s_i does and is a permutation-equivariant
reduction, so the canonical form c(x) is invariant to every sign/scale element and
moves only by the permutation part of a group element. Hence

    invariant:   F(x) = f(c(x))            f permutation-invariant (any NFN/UNF classifier)
    equivariant: F(x) = σ(x) · f(c(x))     f permutation-equivariant, σ(x) the element with x = σ(x)·c(x)

are exactly invariant/equivariant to permutations and the declared signs and
scales, for any spec whose extra symmetries can be ordered so (feed-forward chains such
as the tested MLP, SIREN and ReLU CNN; a unit that feeds itself, as in an RNN, raises
ConfigError), and reuse the permutation layers unchanged.

Why not sign-equivariant linear layers: a linear map commuting with independent
sign flips of rows and columns may only act pointwise (every mean over a
row or column flips in sign with the unit), so it loses all of an NFN's mixing
terms; ScaleGMN restores expressivity with nonlinear (odd / invariant-feature)
messages. Canonicalization costs one reduction and one multiply per group and keeps
the full NFN/UNF basis. Its one price: the sign choice jumps where t crosses 0 (a
measure-zero set; no continuous map can pick one of ±x).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..spec import GroupElement, WeightSpec
from .batch import as_features, check_features

EPS = 1e-12


def _order(spec: WeightSpec) -> list[str]:
    """Groups with extra symmetries, each after every group that acts on its producing entries."""
    extra = {n: g for n, g in spec.groups.items() if g.extra}
    producing = {n: {a.key for a in g.extra_action if a.power > 0} for n, g in extra.items()}
    for n, g in extra.items():
        keys = [a.key for a in g.extra_action if a.power > 0]
        if len(keys) != len(set(keys)):
            raise ConfigError(f"canonicalize: group {n!r} produces along two axes of one entry; no canonical form")
        if any(a.power < 0 and a.key in producing[n] for a in g.extra_action):
            raise ConfigError(f"canonicalize: group {n!r} both produces and consumes one entry (a recurrence); "
                              "its extra symmetry has no per-unit canonical form here")
    after = {n: {m for m, h in extra.items() if m != n and any(a.key in producing[n] for a in h.extra_action)}
             for n in extra}
    done: list[str] = []
    while len(done) < len(extra):
        ready = [n for n in extra if n not in done and after[n] <= set(done)]
        if not ready:
            raise ConfigError(f"canonicalize: the extra symmetries of groups {sorted(set(extra) - set(done))} "
                              "depend on each other in a cycle")
        done.extend(ready)
    return done


def _unit_dim(spec: WeightSpec, key: str, axis: int, group: str) -> tuple[tuple[int, ...], int]:
    """(factored shape of `key` with B, C in front, the dim of `group`'s factor on `axis`)."""
    entry = spec.entries[key]
    dim = 2 + sum(len(a) for a in entry.axes[:axis])
    for f in entry.axes[axis]:
        if f.group == group:
            return entry.factored_shape, dim
        dim += 1
    raise ConfigError(f"canonicalize: group {group!r} does not act on {key!r} axis {axis}")


class Canonicalize(nn.Module):
    """The sign/scale canonical form of weights, from the spec's `extra_action` (module docstring).

    Args:
        spec: the weight space; groups without extra symmetries are left alone.

    Shapes:
        input `key -> (B, C, *shape)` (dict or `WeightSpaceBatch`); output the same, canonical.
        All C channels of a sample share one frame (the group acts on them alike).
    """

    def __init__(self, spec: WeightSpec):
        super().__init__()
        self.spec = spec
        self.order = _order(spec)
        self.kinds = {n: spec.groups[n].extra for n in self.order}

    def _statistic(self, x: dict[str, torch.Tensor], name: str, kind: str) -> torch.Tensor:
        """(B, n): the norm (scale) or sum (sign) of every unit's producing places."""
        total = None
        for act in self.spec.groups[name].extra_action:
            if act.power < 0:
                continue
            t = x[act.key]
            factored, dim = _unit_dim(self.spec, act.key, act.axis, name)
            t = t.reshape(*t.shape[:2], *factored).movedim(dim, 1).flatten(2)
            part = t.square().sum(-1) if kind == "scale" else t.sum(-1)
            total = part if total is None else total + part
        return total.sqrt() if kind == "scale" else total

    def _act(self, x: dict[str, torch.Tensor], g: GroupElement) -> dict[str, torch.Tensor]:
        """The spec's own action of a per-sample element (B, n), shared by the C channels."""
        return self.spec.apply(x, g.unsqueeze(-1), batch_dims=2)

    def split(self, x) -> tuple[dict[str, torch.Tensor], GroupElement]:
        """(c(x), σ(x)): the canonical features and the element with x = σ(x)·c(x), batched (B, 1, n)."""
        x = as_features(x)
        check_features(self.spec, x, None, "Canonicalize input")
        signs, scales = {}, {}
        for name in self.order:
            if "scale" in self.kinds[name]:
                scales[name] = self._statistic(x, name, "scale").clamp_min(EPS)
                x = self._act(x, GroupElement({}, scales={name: 1.0 / scales[name]}))
            if "sign" in self.kinds[name]:
                t = self._statistic(x, name, "sign")
                signs[name] = torch.where(t < 0, -torch.ones_like(t), torch.ones_like(t))
                x = self._act(x, GroupElement({}, signs={name: signs[name]}))
        return x, GroupElement({}, signs, scales).unsqueeze(-1)

    def forward(self, x) -> dict[str, torch.Tensor]:
        return self.split(x)[0]

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}:{'+'.join(self.kinds[n])}" for n in self.order)
        return f"Canonicalize({parts or 'no extra symmetries'})"


class CanonicalInvariant(nn.Module):
    """f(c(x)): a permutation-invariant model made invariant to the spec's signs and scales too.

    Args:
        spec: the weight space whose extra symmetries to quotient out.
        inner: any permutation-invariant model of `key -> (B, C, *shape)` (e.g. an
            `InvariantClassifier`, or `FourierFeatures` then one: elementwise maps are
            fine after canonicalization).

    Shapes: input as `Canonicalize`; output whatever `inner` returns.
    """

    def __init__(self, spec: WeightSpec, inner: nn.Module):
        super().__init__()
        self.canonicalize = Canonicalize(spec)
        self.inner = inner

    def forward(self, x):
        return self.inner(self.canonicalize(x))


class CanonicalEquivariant(nn.Module):
    """σ(x)·f(c(x)): a permutation-equivariant model made equivariant to signs and scales too.

    Args:
        spec: the weight space of input and output (an editor returns new weights).
        inner: a permutation-equivariant model `key -> (B, C_in, *shape)` to
            `key -> (B, C_out, *shape)` (e.g. an `EquivariantNetwork`).

    Shapes: input as `Canonicalize`; output `key -> (B, C_out, *shape)`, each channel
    carried back to the input's frame by σ(x) (acting as on weights).
    """

    def __init__(self, spec: WeightSpec, inner: nn.Module):
        super().__init__()
        self.spec = spec
        self.canonicalize = Canonicalize(spec)
        self.inner = inner

    def forward(self, x) -> dict[str, torch.Tensor]:
        canonical, frame = self.canonicalize.split(x)
        return self.spec.apply(as_features(self.inner(canonical)), frame, batch_dims=2)
