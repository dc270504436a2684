"""Numerical verification of a spec against its model.

Three random group elements must leave the outputs unchanged: at the given weights in
eval mode, on a copy whose parameters are brought to O(1) scale and re-drawn (so a
branch scaled by 1e-6, LayerScale at init, still counts) in eval mode, and on a second
such copy in train mode (where the forward is deterministic). A failure names the group
that fails on its own. A negative control, one tensor permuted alone, must change the
outputs: otherwise the check could not have failed.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import nn

from ..errors import SpecVerificationError
from ..spec import GroupElement, WeightSpec
from .runtime import mode, relative_change
from .trace import tensor_leaves


@dataclass(frozen=True)
class Verification:
    """What the check measured: relative output changes (max |Δ| / max |y|)."""

    eval_diff: float
    redrawn_diff: float | None
    train_diff: float | None
    negative_control: float | None
    tol: float
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        parts = [f"eval max rel. diff {self.eval_diff:.2e}"]
        if self.redrawn_diff is not None:
            parts.append(f"re-drawn weights {self.redrawn_diff:.2e}")
        parts.append(f"train {self.train_diff:.2e}" if self.train_diff is not None else "train not checked")
        if self.negative_control is not None:
            parts.append(f"negative control moved outputs by {self.negative_control:.2e}")
        return f"verified (tol {self.tol:.0e}): " + ", ".join(parts) + "".join(f"; {n}" for n in self.notes)


@dataclass
class Runner:
    """Runs one model on fixed call paths ((args, kwargs) pairs) with a given state dict,
    their output tensors in one list; buffers are copied first in train mode, where
    BatchNorm updates them in place."""

    model: nn.Module
    calls: tuple[tuple[tuple, dict], ...]
    buffers: frozenset[str]

    def __call__(self, sd: dict[str, torch.Tensor], train: bool = False, seed: int = 0) -> list[torch.Tensor]:
        leaves = []
        for args, kwargs in self.calls:
            state = {k: v.clone() if k in self.buffers else v for k, v in sd.items()} if train else sd
            with torch.no_grad(), mode(self.model, train, dropout=False):
                torch.manual_seed(seed)
                out = torch.func.functional_call(self.model, state, args, kwargs, tie_weights=True, strict=False)
            leaves += tensor_leaves(out)
        return leaves


def _tolerance(model: nn.Module) -> float:
    p = next(iter(model.parameters()), None)
    return 1e-8 if p is not None and p.dtype == torch.float64 else 1e-4


def _double(value):
    return torch.utils._pytree.tree_map(
        lambda t: t.double() if isinstance(t, torch.Tensor) and t.is_floating_point() else t, value)


def in_float64(model: nn.Module, calls: tuple[tuple[tuple, dict], ...]):
    """A float64 copy of model and call paths, so float32 rounding (deep nets, train-mode
    BatchNorm on tiny batches) can neither hide nor fake a symmetry; None when the model
    is already float64 or does not run in float64."""
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if not dtypes or dtypes == {torch.float64}:
        return None
    try:
        copied = copy.deepcopy(model).double()
        calls64 = tuple((_double(tuple(a)), _double(dict(k))) for a, k in calls)
        with torch.no_grad():
            for a, k in calls64:
                copied(*a, **k)
    except Exception:
        return None
    return copied, calls64


_SAMPLE = 4096  # elements a matrix's scale is estimated from


def redrawn(spec: WeightSpec, sd: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """`sd` with every floating parameter brought to O(1) scale, differently on each call.

    Matrices and kernels are rescaled to std 1/sqrt(fan_in) (activations stay O(1) through
    depth), each row times its own random factor 1 + N(0, 1/4): one pass over the tensor,
    far cheaper than a fresh draw of every weight. Constant matrices, vectors and scalars
    (norm weights, biases, LayerScale) are drawn afresh: N(0, 1/fan_in), 1 + N(0, 1/4).
    Buffers (running statistics, indices) are kept.
    """
    out = {}
    for key, t in sd.items():
        if spec.entries[key].buffer or not t.is_floating_point() or t.numel() == 0:
            out[key] = t
            continue
        fan_in = t[0].numel() if t.ndim >= 2 else 1
        if t.ndim >= 2:
            flat = t.reshape(-1)
            spread = float(flat[:: max(1, flat.numel() // _SAMPLE)].std())
            if spread > 0:
                rows = 1 + 0.5 * torch.randn(t.shape[0], generator=generator).to(t.dtype)
                out[key] = t * (rows / (spread * fan_in**0.5)).view(-1, *[1] * (t.ndim - 1))
                continue
        noise = torch.randn(t.shape, generator=generator).to(t.dtype)
        out[key] = noise * fan_in**-0.5 if t.ndim >= 2 else 1 + 0.5 * noise
    return out


def _blame(run: Runner, spec: WeightSpec, sd, g: GroupElement, train: bool, ref, diff: float, tol: float, mode: str):
    """Raise SpecVerificationError naming the first group that fails on its own."""
    for name in spec.groups:
        alone = relative_change(ref, run(spec.apply(sd, g.restrict([name])), train))
        if alone > tol:
            raise SpecVerificationError(name, alone, tol, mode)
    raise SpecVerificationError("(several groups together)", diff, tol, mode)


def negative_control(run: Runner, spec: WeightSpec, sd, ref, tol: float) -> float | None:
    """Permute one tensor's group axis alone by a cyclic shift; return the output change.

    Tries groups in order until one moves the outputs clearly (more than 10x tol)."""
    best = None
    for name, group in spec.groups.items():
        member = next((m for m in spec.members(name) if not spec.entries[m.key].buffer), None)
        if member is None:
            continue
        shift = GroupElement({name: torch.roll(torch.arange(group.size), 1)})
        alone = dict(sd)
        alone.update(spec.apply({member.key: sd[member.key]}, shift, strict=False))
        change = relative_change(ref, run(alone))
        best = change if best is None else max(best, change)
        if best > 10 * tol:
            break
    return best


def verify(
    model: nn.Module,
    spec: WeightSpec,
    args: tuple,
    kwargs: dict | None = None,
    generator: torch.Generator | None = None,
    other_calls: Sequence[tuple[tuple, dict]] = (),
) -> tuple[WeightSpec, Verification]:
    """Check `spec` on `model` called on (args, kwargs) and on each of `other_calls`;
    returns the spec (extras that failed dropped) and the record.

    Checks in the model's own precision first; a float32 model that fails is checked
    again in float64, so rounding (deep nets, train-mode BatchNorm on tiny batches) is
    told apart from a real violation. Raises SpecVerificationError naming the group
    when a permutation changes outputs.
    """
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    state = generator.get_state()
    calls = ((tuple(args), dict(kwargs or {})),) + tuple((tuple(a), dict(k or {})) for a, k in other_calls)
    try:
        return _verify(model, spec, calls, generator, [])
    except SpecVerificationError as err:
        wide = in_float64(model, calls)
        if wide is None:
            raise
        generator.set_state(state)
        note = (f"float32 check moved outputs by {err.max_diff:.1e} ({err.group}, {err.mode} mode): "
                "rechecked in float64")
        model64, calls64 = wide
        return _verify(model64, spec, calls64, generator, [note])


def _verify(model, spec, calls, generator, notes: list[str]) -> tuple[WeightSpec, Verification]:
    tol = _tolerance(model)
    full = model.state_dict()
    sd = {k: full[k].detach() for k in spec.entries}
    run = Runner(model, calls, frozenset(k for k, e in spec.entries.items() if e.buffer))
    if not spec.groups:
        return spec.with_status(True), Verification(0.0, None, None, None, tol, ("no groups to check",))
    base = spec.without_extras()
    ref = run(sd)
    eval_diff = _check(run, base, sd, ref, base.random_element(generator), tol, "eval")
    redrawn_diff = _check_redrawn(run, base, redrawn(base, sd, generator), tol, generator, notes)
    other = redrawn(base, sd, generator)
    g = base.random_element(generator)
    train_diff = _check_train(run, base, other, base.apply(other, g), g, tol, notes)
    spec = _verify_extras(run, spec, sd, ref, tol, generator, notes)
    control = negative_control(run, spec, sd, ref, tol)
    if control is not None and control <= 10 * tol:
        notes.append(f"negative control changed outputs by only {control:.1e}: the check may be blind here")
    record = Verification(eval_diff, redrawn_diff, train_diff, control, tol, tuple(notes))
    return spec.with_status(True), record


def _check(run: Runner, spec: WeightSpec, sd, ref, g: GroupElement, tol: float, mode: str) -> float:
    """The output change under `g` at `sd`; raises naming the failing group past `tol`."""
    diff = relative_change(ref, run(spec.apply(sd, g)))
    if diff > tol:
        _blame(run, spec, sd, g, False, ref, diff, tol, mode)
    return diff


def _check_redrawn(run: Runner, spec: WeightSpec, other, tol: float, generator, notes: list[str]) -> float | None:
    """The eval check on re-drawn weights `other`; a model that does not run (or gives
    non-finite outputs) on re-drawn weights is only noted."""
    g = spec.random_element(generator)
    try:
        ref = run(other)
    except Exception as err:  # a model may depend on its weights' values (e.g. a mask)
        notes.append(f"re-drawn weights not checked ({type(err).__name__})")
        return None
    if not all(torch.isfinite(t).all() for t in ref if t.is_floating_point()):
        notes.append("re-drawn weights not checked (non-finite outputs)")
        return None
    return _check(run, spec, other, ref, g, tol, "eval (re-drawn weights)")


def _check_train(run: Runner, spec, sd, moved, g, tol, notes: list[str]) -> float | None:
    """Train mode (on a second re-drawn copy), same seed for both runs; a forward that
    stays random (functional dropout) is only noted."""
    try:
        ref = run(sd, train=True)
        diff = relative_change(ref, run(moved, train=True))
        if diff <= tol:
            return diff
        if relative_change(ref, run(sd, train=True, seed=1)) > tol:
            notes.append("train mode is stochastic (dropout?); checked in eval mode only")
            return None
    except Exception as err:  # a model may refuse train mode on the example (e.g. BN on batch 1)
        notes.append(f"train mode not checked ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
        return None
    _blame(run, spec, sd, g, True, ref, diff, tol, "train")


def _verify_extras(run: Runner, spec, sd, ref, tol, generator, notes) -> WeightSpec:
    with_extra = [n for n, g in spec.groups.items() if g.extra]
    if not with_extra:
        return spec
    groups = dict(spec.groups)
    for name in with_extra:
        g = spec.random_element(generator, extra=True)
        only = GroupElement({}, g.signs, g.scales).restrict([name])
        diff = relative_change(ref, run(spec.apply(sd, only)))
        if diff > tol:
            notes.append(f"dropped {'/'.join(groups[name].extra)} symmetry of {name} (moved outputs by {diff:.1e})")
            groups[name] = replace(groups[name], extra=(), extra_action=())
    spec = replace(spec, groups=groups)
    if any(g.extra for g in spec.groups.values()):
        g = spec.random_element(generator, extra=True)
        diff = relative_change(ref, run(spec.apply(sd, g)))
        if diff > tol:
            notes.append(f"dropped all sign/scale symmetries (together they moved outputs by {diff:.1e})")
            spec = spec.without_extras()
    return spec
