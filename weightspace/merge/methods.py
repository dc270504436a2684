"""The merge methods, one tensor at a time: soups, SLERP, task arithmetic, TIES, DARE, model stock.

Each method is a kernel `f(tensors, base, key, **options) -> tensor` over the same
entry of every model (and of the base model, for methods on task vectors
τ_i = θ_i − θ_base). The in-memory merge and the streaming merge call the very same
kernel on the very same tensors, so they agree bit for bit. Kernels compute in the
entry's dtype, or float32 for half-precision entries, and return the dtype of the
first model's entry.

- linear (model soup; Wortsman et al. 2022): Σ w_i θ_i / Σ w_i, uniform by default.
- slerp (Shoemake 1985, as in mergekit): spherical interpolation of two models per
  tensor; tensors within `PARALLEL_DOT` of parallel (or of zero norm) fall back to linear.
- task_arithmetic (Ilharco et al. 2023): θ_base + λ Σ w_i τ_i.
- ties (Yadav et al. 2023): keep each τ_i's top `density` fraction by magnitude, elect
  each coordinate's sign from the summed trimmed values (the sign of the larger total
  magnitude), average the values that agree with it (disjoint mean); θ_base + λ·that.
- dare (Yu et al. 2024): drop each coordinate of τ_i with probability p and rescale
  the rest by 1/(1-p) (seeded per entry and model), then combine linearly (as task
  arithmetic) or with TIES' sign election and disjoint mean.
- model_stock (Jang et al. 2024): with cos θ the mean pairwise cosine of the N task
  vectors, t = N cos θ / (1 + (N-1) cos θ) and θ = t·mean(θ_i) + (1-t)·θ_base.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..errors import ConfigError

Kernel = Callable[..., torch.Tensor]
# |cos| above this: SLERP falls back to linear interpolation (mergekit's DOT_THRESHOLD).
PARALLEL_DOT = 0.9995
_EPS = 1e-12


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype a kernel computes in: the entry's own, float32 for half precision."""
    return t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32


def _stack(tensors: Sequence[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    return torch.stack([t.detach().to(dtype) for t in tensors])


def _weights(weights: Sequence[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0] * n
    if len(weights) != n:
        raise ConfigError(f"weights: {len(weights)} given for {n} models")
    return [float(w) for w in weights]


def _task_vectors(tensors: Sequence[torch.Tensor], base: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """τ_i = θ_i − θ_base as rows of one new tensor (the subtraction in place: one N-model buffer)."""
    return _stack(tensors, dtype).sub_(base.detach().to(dtype))


def _weighted_sum(rows: Sequence[torch.Tensor], weights: Sequence[float], dtype: torch.dtype) -> torch.Tensor:
    """Σ w_i row_i, accumulated row by row (no N-model temporary)."""
    acc = torch.zeros(rows[0].shape, dtype=dtype)
    for w, row in zip(weights, rows):
        acc.add_(row.detach().to(dtype), alpha=w)
    return acc


def linear(tensors: Sequence[torch.Tensor], base: torch.Tensor | None, key: str, *, weights=None) -> torch.Tensor:
    """Σ w_i θ_i / Σ w_i (a uniform soup by default)."""
    dtype = compute_dtype(tensors[0])
    w = _weights(weights, len(tensors))
    return _weighted_sum(tensors, w, dtype).div_(sum(w)).to(tensors[0].dtype)


def slerp(tensors: Sequence[torch.Tensor], base: torch.Tensor | None, key: str, *, t: float = 0.5) -> torch.Tensor:
    """Spherical interpolation from the first model (t=0) to the second (t=1), per tensor."""
    dtype = compute_dtype(tensors[0])
    a, b = (x.detach().to(dtype) for x in tensors)
    na, nb = a.norm(), b.norm()
    dot = float((a.flatten() @ b.flatten()) / (na * nb)) if float(na) > _EPS and float(nb) > _EPS else 1.0
    if abs(dot) > PARALLEL_DOT:
        return torch.lerp(a, b, t).to(tensors[0].dtype)
    theta = math.acos(dot)
    s = math.sin(theta)
    return (math.sin((1 - t) * theta) / s * a + math.sin(t * theta) / s * b).to(tensors[0].dtype)


def task_arithmetic(
    tensors: Sequence[torch.Tensor], base: torch.Tensor, key: str, *, scale: float = 1.0, weights=None
) -> torch.Tensor:
    """θ_base + λ Σ w_i τ_i."""
    dtype = compute_dtype(base)
    w = _weights(weights, len(tensors))
    b = base.detach().to(dtype)
    tau = _weighted_sum(tensors, w, dtype).sub_(b, alpha=sum(w))
    return tau.mul_(scale).add_(b).to(tensors[0].dtype)


def trim(tau: torch.Tensor, density: float) -> torch.Tensor:
    """A copy of `tau` (one task vector per row), each row with all but its round(density·n) largest magnitudes zeroed."""
    return _trim_(tau.clone(), density)


def _trim_(tau: torch.Tensor, density: float) -> torch.Tensor:
    """`trim`, in place."""
    flat = tau.reshape(tau.shape[0], -1)
    k = int(round(density * flat.shape[1]))
    if k >= flat.shape[1]:
        return tau
    for row in flat:  # row by row: the temporaries are one row's, not N models'
        keep = torch.zeros(row.shape, dtype=torch.bool)
        if k > 0:
            keep[row.abs().topk(k).indices] = True
        row.mul_(keep)
    return tau


def disjoint_mean(tau: torch.Tensor) -> torch.Tensor:
    """TIES' merge of task vectors (rows): elect sign(Σ_i τ_i), average the entries that agree with it."""
    elected = torch.sign(tau.sum(0))
    total = torch.zeros_like(elected)
    count = torch.zeros_like(elected)
    for row in tau:
        agree = (torch.sign(row) == elected) & (row != 0)
        total.add_(torch.where(agree, row, 0))
        count.add_(agree)
    return torch.where(count > 0, total / count.clamp_min(1), 0)


def ties(
    tensors: Sequence[torch.Tensor], base: torch.Tensor, key: str, *, density: float = 0.2, scale: float = 1.0
) -> torch.Tensor:
    """θ_base + λ·disjoint_mean(trim(τ, density))."""
    dtype = compute_dtype(base)
    merged = disjoint_mean(_trim_(_task_vectors(tensors, base, dtype), density))
    return merged.mul_(scale).add_(base.detach().to(dtype)).to(tensors[0].dtype)


def dare_generator(seed: int, key: str, model: int) -> torch.Generator:
    """The generator of DARE's mask for one entry of one model: a function of (seed, key, model) only,
    so the streaming merge draws the same masks as the in-memory one, whatever the entry order."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + zlib.crc32(key.encode()) * 131 + model) % 2**63)


def drop(tau: torch.Tensor, p: float, seed: int, key: str) -> torch.Tensor:
    """DARE on a copy of `tau`: each coordinate of each task vector (row) kept with probability 1-p, rescaled by 1/(1-p)."""
    return _drop_(tau.clone(), p, seed, key)


def _drop_(tau: torch.Tensor, p: float, seed: int, key: str) -> torch.Tensor:
    """`drop`, in place."""
    for i, row in enumerate(tau):
        keep = torch.rand(row.shape, generator=dare_generator(seed, key, i), dtype=torch.float64) >= p
        row.mul_(keep).div_(1 - p)
    return tau


def dare(
    tensors: Sequence[torch.Tensor],
    base: torch.Tensor,
    key: str,
    *,
    p: float = 0.9,
    seed: int = 0,
    combine: str = "linear",
    scale: float = 1.0,
    weights=None,
) -> torch.Tensor:
    """θ_base + λ·combine(drop(τ, p)); combine "linear" (Σ w_i τ̃_i) or "ties" (disjoint mean)."""
    dtype = compute_dtype(base)
    tau = _drop_(_task_vectors(tensors, base, dtype), p, seed, key)
    if combine == "ties":
        merged = disjoint_mean(tau)
    else:
        merged = _weighted_sum(tau, _weights(weights, len(tensors)), dtype)
    return merged.mul_(scale).add_(base.detach().to(dtype)).to(tensors[0].dtype)


def stock_ratio(tau: torch.Tensor) -> float:
    """Model stock's t = N cos θ / (1 + (N-1) cos θ), cos θ the mean pairwise cosine of the rows.

    A task vector of zero norm counts as orthogonal to the others (cos 0), which gives t = 0 when
    every one is zero: the entry stays at the base.
    """
    flat = tau.reshape(tau.shape[0], -1).double()
    n = flat.shape[0]
    unit = flat / flat.norm(dim=1, keepdim=True).clamp_min(_EPS)
    cos = unit @ unit.T
    mean_cos = float(cos[torch.triu_indices(n, n, 1).unbind()].mean())
    return n * mean_cos / (1 + (n - 1) * mean_cos)


def model_stock(tensors: Sequence[torch.Tensor], base: torch.Tensor, key: str) -> torch.Tensor:
    """t·mean(θ_i) + (1-t)·θ_base with t from `stock_ratio` of this entry's task vectors."""
    dtype = compute_dtype(base)
    t = stock_ratio(_task_vectors(tensors, base, dtype))
    mean = _stack(tensors, dtype).mean(0)
    return (t * mean + (1 - t) * base.detach().to(dtype)).to(tensors[0].dtype)


@dataclass(frozen=True)
class Method:
    """A merge method: its kernel, whether it needs a base model, how many models it takes."""

    name: str
    kernel: Kernel
    needs_base: bool
    min_models: int
    max_models: int | None = None

    def check(self, n_models: int, has_base: bool, options: dict) -> None:
        """ConfigError for a wrong model count, a missing base, or an unknown or out-of-range option."""
        if n_models < self.min_models or (self.max_models is not None and n_models > self.max_models):
            want = f"exactly {self.min_models}" if self.max_models == self.min_models else f"at least {self.min_models}"
            raise ConfigError(f"{self.name} merges {want} models, got {n_models}")
        if self.needs_base and not has_base:
            raise ConfigError(f"{self.name} works on task vectors and needs a base model")
        allowed = set(self.kernel.__kwdefaults__ or {})
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ConfigError(f"{self.name} takes no option(s) {unknown}; it takes {sorted(allowed) or 'none'}")
        _check_ranges(self.name, options, n_models)


def _check_ranges(name: str, o: dict, n_models: int) -> None:
    if "t" in o and not 0.0 <= float(o["t"]) <= 1.0:
        raise ConfigError(f"{name}: t must lie in [0, 1], got {o['t']}")
    if "density" in o and not 0.0 < float(o["density"]) <= 1.0:
        raise ConfigError(f"{name}: density must lie in (0, 1], got {o['density']}")
    if "p" in o and not 0.0 <= float(o["p"]) < 1.0:
        raise ConfigError(f"{name}: p must lie in [0, 1), got {o['p']}")
    if "combine" in o and o["combine"] not in ("linear", "ties"):
        raise ConfigError(f"{name}: combine must be 'linear' or 'ties', got {o['combine']!r}")
    if o.get("weights") is not None:
        w = _weights(o["weights"], n_models)
        if not all(math.isfinite(x) for x in w) or (name == "linear" and sum(w) == 0):
            raise ConfigError(f"{name}: weights must be finite (and not sum to 0 for linear), got {w}")


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("linear", linear, needs_base=False, min_models=1),
        Method("slerp", slerp, needs_base=False, min_models=2, max_models=2),
        Method("task_arithmetic", task_arithmetic, needs_base=True, min_models=1),
        Method("ties", ties, needs_base=True, min_models=1),
        Method("dare", dare, needs_base=True, min_models=1),
        Method("model_stock", model_stock, needs_base=True, min_models=2),
    )
}


def method(name: str) -> Method:
    """The method called `name`; ConfigError listing the methods otherwise."""
    found = METHODS.get(name)
    if found is None:
        raise ConfigError(f"unknown merge method {name!r}; the methods are {', '.join(METHODS)} "
                          "(zipit and cca are weightspace.merge.zip_models)")
    return found
