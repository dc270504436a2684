"""Shared pieces of the equivariance checks: inputs, elements, output comparison."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import torch

from ..errors import ConfigError, InputTypeError
from ..spec import GroupElement, WeightSpec
from .weights import random_weights


def default_generator(generator: torch.Generator | None) -> torch.Generator:
    """The caller's generator, or a fixed-seed one so that a failing check reproduces."""
    return generator if generator is not None else torch.Generator().manual_seed(0)


def prepare_inputs(
    spec: WeightSpec,
    inputs: Mapping[str, torch.Tensor] | None,
    generator: torch.Generator,
    dtype: torch.dtype,
    batch_dims: int,
    batch_shape: Iterable[int] | None,
) -> dict[str, torch.Tensor]:
    """The caller's inputs cast to `dtype` (floating tensors only), or random weights."""
    if batch_dims < 0:
        raise ConfigError(f"batch_dims must be >= 0, got {batch_dims}")
    if inputs is not None:
        return {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}
    shape = (2,) * batch_dims if batch_shape is None else tuple(batch_shape)
    if len(shape) != batch_dims:
        raise ConfigError(f"batch_shape {shape} must have batch_dims={batch_dims} dimensions")
    return random_weights(spec, generator, shape, dtype)


def element_batch_shape(inputs: Mapping[str, torch.Tensor], batch_dims: int) -> tuple[int, ...]:
    """One independent element per index of the first batch dim; later batch dims share it."""
    if batch_dims == 0 or not inputs:
        return ()
    lead = next(iter(inputs.values())).shape[:batch_dims]
    return (lead[0],) + (1,) * (batch_dims - 1)


def restrict(g: GroupElement, spec: WeightSpec, names: Iterable[str] | None = None) -> GroupElement:
    """The part of `g` acting on groups of `spec` (and, if given, only on `names`)."""
    keep = set(spec.groups) if names is None else set(names) & set(spec.groups)
    for n in keep & set(g.perms):
        if g.perms[n].shape[-1] != spec.groups[n].size:
            raise ConfigError(
                f"group {n!r} has size {g.perms[n].shape[-1]} on the input side and "
                f"{spec.groups[n].size} in the output spec"
            )
    return g.restrict(keep)


def as_outputs(y: Any) -> dict[str, torch.Tensor]:
    """Name a function's outputs: a dict as is, a tensor as 'output', a sequence by index."""
    if isinstance(y, torch.Tensor):
        return {"output": y}
    if isinstance(y, Mapping):
        return dict(y)
    if isinstance(y, (tuple, list)):
        return {f"output[{i}]": t for i, t in enumerate(y)}
    raise InputTypeError(f"fn must return a tensor, a dict of tensors or a tuple of tensors, got {type(y).__name__}")


@dataclass(frozen=True)
class Mismatch:
    """How one output differs from its expected value."""

    key: str
    max_diff: float
    index: tuple[int, ...]
    shape: tuple[int, ...]
    detail: str = ""

    def describe(self) -> str:
        if self.detail:
            return f"output {self.key!r}: {self.detail}"
        return (
            f"output {self.key!r} (shape {self.shape}) differs by up to {self.max_diff:.3g} "
            f"at index {self.index}"
        )


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest |a - b| in float64 (inf for a shape mismatch, nan propagates)."""
    if a.shape != b.shape:
        return float("inf")
    if a.numel() == 0:
        return 0.0
    return float((a.detach().double() - b.detach().double()).abs().max())


def compare(
    got: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    rtol: float,
    atol: float,
) -> tuple[list[Mismatch], float]:
    """Every output where `got` is not close to `expected`, worst first, and the max |diff|."""
    bad: list[Mismatch] = []
    worst = 0.0
    if set(got) != set(expected):
        only_got = sorted(set(got) - set(expected))
        only_exp = sorted(set(expected) - set(got))
        detail = f"the transformed input gave keys {only_got} not in the untransformed output, lacking {only_exp}"
        return [Mismatch("<keys>", float("inf"), (), (), detail)], float("inf")
    for key, e in expected.items():
        a = got[key]
        if a.shape != e.shape:
            bad.append(Mismatch(key, float("inf"), (), tuple(e.shape), f"shape {tuple(a.shape)} != {tuple(e.shape)}"))
            worst = float("inf")
            continue
        a64, e64 = a.detach().double(), e.detach().double()
        close = torch.isclose(a64, e64, rtol=rtol, atol=atol)
        diff = (a64 - e64).abs().nan_to_num(nan=float("inf"))
        d = float(diff.max()) if diff.numel() else 0.0
        worst = max(worst, d)
        if not bool(close.all()):
            flat = int(torch.argmax(diff))
            index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
            bad.append(Mismatch(key, d, index, tuple(e.shape)))
    bad.sort(key=lambda m: -m.max_diff)
    return bad, worst
