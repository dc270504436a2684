"""Numerical verification of a spec against its model.

Random group elements must leave the outputs unchanged (eval mode, and train mode
where the forward is deterministic), and a negative control, one tensor permuted
alone, must change them: otherwise the check could not have failed.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..errors import SpecVerificationError
from ..spec import GroupElement, WeightSpec
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


@contextlib.contextmanager
def _mode(model: nn.Module, train: bool):
    saved = {m: m.training for m in model.modules()}
    model.train(train)
    try:
        yield
    finally:
        for m, flag in saved.items():
            m.training = flag


def _state(model: nn.Module, spec: WeightSpec) -> dict[str, torch.Tensor]:
    sd = model.state_dict()
    return {k: sd[k].detach() for k in spec.entries}


def _outputs(model, sd, args, kwargs, train: bool, seed: int = 0) -> list[torch.Tensor]:
    sd = {k: v.clone() for k, v in sd.items()} if train else sd
    with torch.no_grad(), _mode(model, train):
        torch.manual_seed(seed)
        out = torch.func.functional_call(model, sd, tuple(args), kwargs or {}, tie_weights=True, strict=False)
    return tensor_leaves(out)


def relative_change(ref: list[torch.Tensor], new: list[torch.Tensor]) -> float:
    """max |new - ref| / max |ref| over every output tensor (inf on shape change)."""
    worst = 0.0
    for a, b in zip(ref, new):
        if a.shape != b.shape:
            return float("inf")
        if not a.is_floating_point():
            worst = max(worst, float((a != b).any()))
            continue
        scale = a.abs().max().item() if a.numel() else 0.0
        diff = (a - b).abs().max().item() if a.numel() else 0.0
        worst = max(worst, diff / max(scale, 1e-12))
    return worst


def _tolerance(model: nn.Module) -> float:
    p = next(iter(model.parameters()), None)
    return 1e-9 if p is not None and p.dtype == torch.float64 else 1e-4


def _only(g: GroupElement, name: str) -> GroupElement:
    keep = lambda d: {k: v for k, v in d.items() if k == name}  # noqa: E731
    return GroupElement(keep(g.perms), keep(g.signs), keep(g.scales))


def _check(model, spec, sd, args, kwargs, g, train, ref, tol, mode) -> float:
    diff = relative_change(ref, _outputs(model, spec.apply(sd, g), args, kwargs, train))
    if diff <= tol:
        return diff
    for name in spec.groups:
        alone = relative_change(ref, _outputs(model, spec.apply(sd, _only(g, name)), args, kwargs, train))
        if alone > tol:
            raise SpecVerificationError(name, alone, tol, mode)
    raise SpecVerificationError("(several groups together)", diff, tol, mode)


def negative_control(model, spec: WeightSpec, sd, args, kwargs, ref, tries: int = 3) -> float | None:
    """Permute one tensor's group axis alone by a cyclic shift; return the output change."""
    best = None
    for name, group in list(spec.groups.items())[:tries]:
        member = next((m for m in spec.members(name) if not spec.entries[m.key].buffer), None)
        if member is None:
            continue
        shift = GroupElement({name: torch.roll(torch.arange(group.size), 1)})
        alone = dict(sd)
        alone.update(spec.apply({member.key: sd[member.key]}, shift))
        change = relative_change(ref, _outputs(model, alone, args, kwargs, False))
        best = change if best is None else max(best, change)
    return best


def verify(
    model: nn.Module,
    spec: WeightSpec,
    args: tuple,
    kwargs: dict | None = None,
    generator: torch.Generator | None = None,
) -> tuple[WeightSpec, Verification]:
    """Check `spec` on `model`; returns the spec (extras that failed dropped) and the record.

    Raises SpecVerificationError naming the group when a permutation changes outputs.
    """
    tol = _tolerance(model)
    sd = _state(model, spec)
    notes: list[str] = []
    if not spec.groups:
        return spec.with_status(True), Verification(0.0, None, None, tol, ("no groups to check",))
    base = spec.without_extras()
    ref = _outputs(model, sd, args, kwargs, False)
    g = base.random_element(generator)
    eval_diff = _check(model, base, sd, args, kwargs, g, False, ref, tol, "eval")
    train_diff = None
    try:
        ref_train = _outputs(model, sd, args, kwargs, True, seed=0)
        if relative_change(ref_train, _outputs(model, sd, args, kwargs, True, seed=1)) > tol:
            notes.append("train mode is stochastic (dropout?); checked in eval mode only")
        else:
            train_diff = _check(model, base, sd, args, kwargs, g, True, ref_train, tol, "train")
    except SpecVerificationError:
        raise
    except Exception as err:  # a model may refuse train mode on the example (e.g. BN on batch 1)
        notes.append(f"train mode not checked ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
    spec = _verify_extras(model, spec, sd, args, kwargs, ref, tol, generator, notes)
    control = negative_control(model, spec, sd, args, kwargs, ref)
    if control is not None and control <= 10 * tol:
        notes.append(f"negative control changed outputs by only {control:.1e}: the check may be blind here")
    record = Verification(eval_diff, train_diff, control, tol, tuple(notes))
    return spec.with_status(True), record


def _verify_extras(model, spec, sd, args, kwargs, ref, tol, generator, notes) -> WeightSpec:
    with_extra = [n for n, g in spec.groups.items() if g.extra]
    if not with_extra:
        return spec
    groups = dict(spec.groups)
    for name in with_extra:
        g = spec.random_element(generator, extra=True)
        only = GroupElement({}, {k: v for k, v in g.signs.items() if k == name}, {k: v for k, v in g.scales.items() if k == name})
        diff = relative_change(ref, _outputs(model, spec.apply(sd, only), args, kwargs, False))
        if diff > tol:
            notes.append(f"dropped {'/'.join(groups[name].extra)} symmetry of {name} (moved outputs by {diff:.1e})")
            groups[name] = replace(groups[name], extra=(), extra_action=())
    spec = replace(spec, groups=groups)
    if any(g.extra for g in spec.groups.values()):
        g = spec.random_element(generator, extra=True)
        diff = relative_change(ref, _outputs(model, spec.apply(sd, g), args, kwargs, False))
        if diff > tol:
            notes.append(f"dropped all sign/scale symmetries (together they moved outputs by {diff:.1e})")
            spec = spec.without_extras()
    return spec
