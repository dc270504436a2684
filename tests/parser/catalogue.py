"""The parser catalogue's checks, library-free: a case (model, call paths, expected group
sizes), weights re-drawn at O(1) scale in float64, outputs compared outside the library.

A spec passes when its groups are the expected multiset of sizes, it is verified, random
elements leave every call's outputs unchanged on 3 re-drawn copies, and each group,
applied to one of its parameter tensors alone, moves the outputs (a negative control).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call
from torch.utils._pytree import tree_leaves

import weightspace as ws

Call = tuple[tuple, dict]


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], nn.Module]
    calls: tuple[Call, ...]  # the first is the one traced; all are checked
    expected: list[int]
    traced: tuple[Call, ...] = field(default=())  # other_calls passed to parse (default: all but the first)

    def __repr__(self) -> str:
        return f"Case({self.name})"


def x64(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def seeded(fn):
    def build():
        torch.manual_seed(0)
        return fn().double().eval()
    return build


def redraw(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Every floating parameter re-drawn at O(1) scale (fan-in scaled matrices, 1 + N(0, 1/4) vectors)."""
    gen = torch.Generator().manual_seed(seed)
    out, drawn = {}, {}
    params = {id(p) for p in model.parameters()}
    for key, t in model.state_dict(keep_vars=True).items():
        if id(t) in drawn:  # a tied tensor stays one tensor
            out[key] = drawn[id(t)]
            continue
        value = t.detach()
        if id(t) in params and value.is_floating_point():
            noise = torch.randn(value.shape, generator=gen, dtype=value.dtype)
            value = noise * value[0].numel() ** -0.5 if value.ndim >= 2 else 1 + 0.5 * noise
        out[key] = drawn[id(t)] = value
    return out


@torch.no_grad()
def outputs(model: nn.Module, sd: dict, calls) -> list[torch.Tensor]:
    """Output tensors of every call; a tied tensor is passed once, under its first key."""
    first: dict[int, str] = {}
    keys = {first.setdefault(id(t), k) for k, t in model.state_dict(keep_vars=True).items()}
    sd = {k: v for k, v in sd.items() if k in keys}
    return [t for args, kwargs in calls for t in tree_leaves(functional_call(model, sd, args, kwargs, strict=False))]


def rel_change(new: list[torch.Tensor], ref: list[torch.Tensor]) -> float:
    return max(float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-12))
               for a, b in zip(new, ref))


def parse_case(case: Case):
    model = case.build()
    (args, kwargs), *rest = case.calls
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = ws.parse(model, args, kwargs, other_calls=case.traced or tuple(rest))
    return model, spec, [str(w.message) for w in caught]


def check_symmetry(case: Case) -> None:
    """The expected group sizes, verified, and a true symmetry of every call on 3 re-drawn copies."""
    model, spec, _ = parse_case(case)
    sizes = sorted(g.size for g in spec.groups.values())
    assert sizes == sorted(case.expected), f"{case.name}: groups {sizes}; {spec!r}"
    assert spec.verified
    for seed in range(3):
        sd = redraw(model, seed)
        ref = outputs(model, sd, case.calls)
        g = spec.random_element(torch.Generator().manual_seed(seed))
        err = rel_change(outputs(model, spec.apply(sd, g), case.calls), ref)
        assert err <= 1e-9, f"{case.name}: seed {seed}: outputs moved by {err:.2e}"


def check_each_group_alone(case: Case) -> None:
    """Each group, applied to one of its parameter tensors alone, moves the outputs."""
    model, spec, _ = parse_case(case)
    sd = redraw(model, 0)
    ref = outputs(model, sd, case.calls)
    params = {k for k, _ in model.named_parameters()}
    for name, group in spec.groups.items():
        member = next(m for m in spec.members(name) if m.key in params)
        shift = ws.GroupElement({name: torch.roll(torch.arange(group.size), 1)})
        alone = {**sd, **spec.apply({member.key: sd[member.key]}, shift, strict=False)}
        change = rel_change(outputs(model, alone, case.calls), ref)
        assert change > 1e-3, f"{case.name}: permuting only {member.key} ({name}) changed outputs by {change:.2e}"
