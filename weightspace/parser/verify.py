"""Numerical verification of a spec against its model.

Random group elements must leave the outputs unchanged (eval mode, and train mode
where the forward is deterministic), and a negative control, one tensor permuted
alone, must change them: otherwise the check could not have failed.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

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
    train_diff: float | None
    negative_control: float | None
    tol: float
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        parts = [f"eval max rel. diff {self.eval_diff:.2e}"]
        parts.append(f"train {self.train_diff:.2e}" if self.train_diff is not None else "train not checked")
        if self.negative_control is not None:
            parts.append(f"negative control moved outputs by {self.negative_control:.2e}")
        return f"verified (tol {self.tol:.0e}): " + ", ".join(parts) + "".join(f"; {n}" for n in self.notes)


@dataclass
class Runner:
    """Runs one model on fixed inputs with a given state dict; buffers are copied
    first in train mode, where BatchNorm updates them in place."""

    model: nn.Module
    args: tuple
    kwargs: dict
    buffers: frozenset[str]

    def __call__(self, sd: dict[str, torch.Tensor], train: bool = False, seed: int = 0) -> list[torch.Tensor]:
        if train:
            sd = {k: v.clone() if k in self.buffers else v for k, v in sd.items()}
        with torch.no_grad(), mode(self.model, train, dropout=False):
            torch.manual_seed(seed)
            out = torch.func.functional_call(self.model, sd, self.args, self.kwargs, tie_weights=True, strict=False)
        return tensor_leaves(out)


def _tolerance(model: nn.Module) -> float:
    p = next(iter(model.parameters()), None)
    return 1e-8 if p is not None and p.dtype == torch.float64 else 1e-4


def _double(value):
    return torch.utils._pytree.tree_map(
        lambda t: t.double() if isinstance(t, torch.Tensor) and t.is_floating_point() else t, value)


def in_float64(model: nn.Module, args: tuple, kwargs: dict | None):
    """A float64 copy of model and inputs, so float32 rounding (deep nets, train-mode
    BatchNorm on tiny batches) can neither hide nor fake a symmetry; None when the model
    is already float64 or does not run in float64."""
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if not dtypes or dtypes == {torch.float64}:
        return None
    try:
        copied = copy.deepcopy(model).double()
        args64, kwargs64 = _double(tuple(args)), _double(dict(kwargs or {}))
        with torch.no_grad():
            copied(*args64, **kwargs64)
    except Exception:
        return None
    return copied, args64, kwargs64


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
        alone.update(spec.apply({member.key: sd[member.key]}, shift))
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
) -> tuple[WeightSpec, Verification]:
    """Check `spec` on `model`; returns the spec (extras that failed dropped) and the record.

    Checks in the model's own precision first; a float32 model that fails is checked
    again in float64, so rounding (deep nets, train-mode BatchNorm on tiny batches) is
    told apart from a real violation. Raises SpecVerificationError naming the group
    when a permutation changes outputs.
    """
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    state = generator.get_state()
    try:
        return _verify(model, spec, args, kwargs, generator, [])
    except SpecVerificationError as err:
        wide = in_float64(model, args, kwargs)
        if wide is None:
            raise
        generator.set_state(state)
        note = (f"float32 check moved outputs by {err.max_diff:.1e} ({err.group}, {err.mode} mode): "
                "rechecked in float64")
        model64, args64, kwargs64 = wide
        return _verify(model64, spec, args64, kwargs64, generator, [note])


def _verify(model, spec, args, kwargs, generator, notes: list[str]) -> tuple[WeightSpec, Verification]:
    tol = _tolerance(model)
    full = model.state_dict()
    sd = {k: full[k].detach() for k in spec.entries}
    run = Runner(model, tuple(args), dict(kwargs or {}), frozenset(k for k, e in spec.entries.items() if e.buffer))
    if not spec.groups:
        return spec.with_status(True), Verification(0.0, None, None, tol, ("no groups to check",))
    base = spec.without_extras()
    ref = run(sd)
    g = base.random_element(generator)
    moved = base.apply(sd, g)
    eval_diff = relative_change(ref, run(moved))
    if eval_diff > tol:
        _blame(run, base, sd, g, False, ref, eval_diff, tol, "eval")
    train_diff = _check_train(run, base, sd, moved, g, tol, notes)
    spec = _verify_extras(run, spec, sd, ref, tol, generator, notes)
    control = negative_control(run, spec, sd, ref, tol)
    if control is not None and control <= 10 * tol:
        notes.append(f"negative control changed outputs by only {control:.1e}: the check may be blind here")
    record = Verification(eval_diff, train_diff, control, tol, tuple(notes))
    return spec.with_status(True), record


def _check_train(run: Runner, spec, sd, moved, g, tol, notes: list[str]) -> float | None:
    """Train mode, same seed for both runs; a forward that stays random (functional
    dropout) is only noted."""
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
