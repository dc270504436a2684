"""Stacked SIRENs (Sitzmann et al., 2020, "Implicit Neural Representations with
Periodic Activation Functions"): N networks of one architecture evaluated at once.

Weights live in a dict of stacked tensors keyed like `weightspace.examples.siren`
(`0.weight`, `0.bias`, `2.weight`, … with a leading network dim), so any stored
INR loads into that `nn.Sequential` unchanged. The forward pass is one batched
matmul per layer (`torch.baddbmm`), no Python loop over networks.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from weightspace.errors import ZooError

FIRST_LAYER_INITS = ("siren", "torch", "hidden")
BIAS_INITS = ("torch", "zero")


@dataclass(frozen=True)
class SirenConfig:
    """Architecture of a SIREN: widths (in, hidden…, out), frequency ω0, init scheme.

    first_init "siren" draws the first layer's weights from U(-1/in, 1/in) as the
    paper does; "torch" uses nn.Linear's default U(-1/√in, 1/√in); "hidden" uses the
    hidden layers' rule for it too. Hidden and output weights follow the paper,
    U(-√(6/in)/ω0, √(6/in)/ω0). bias_init "torch" is nn.Linear's default
    U(-1/√in, 1/√in); "zero" starts every bias at 0. first_init="hidden" with
    bias_init="zero" is the init of DWSNets' INR code (the field's MNIST/FashionMNIST
    INR datasets were fitted from it).
    """

    widths: tuple[int, ...] = (2, 32, 32, 1)
    w0: float = 30.0
    first_init: str = "siren"
    bias_init: str = "torch"

    def __post_init__(self):
        if len(self.widths) < 2 or any(int(w) < 1 for w in self.widths):
            raise ZooError(f"SIREN widths must be at least (in, out) of positive ints, got {self.widths}")
        if self.first_init not in FIRST_LAYER_INITS:
            raise ZooError(f"unknown first-layer init {self.first_init!r}; expected one of {FIRST_LAYER_INITS}")
        if self.bias_init not in BIAS_INITS:
            raise ZooError(f"unknown bias init {self.bias_init!r}; expected one of {BIAS_INITS}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))

    @property
    def keys(self) -> list[str]:
        """State-dict keys in layer order (Linear modules sit at even Sequential indices)."""
        return [f"{2 * i}.{leaf}" for i in range(len(self.widths) - 1) for leaf in ("weight", "bias")]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        out = {}
        for i, (a, b) in enumerate(zip(self.widths[:-1], self.widths[1:])):
            out[f"{2 * i}.weight"] = (b, a)
            out[f"{2 * i}.bias"] = (b,)
        return out

    def to_dict(self) -> dict:
        return {"type": "siren", **asdict(self), "widths": list(self.widths)}

    @classmethod
    def from_dict(cls, d: dict) -> "SirenConfig":
        return cls(tuple(d["widths"]), float(d["w0"]), d.get("first_init", "siren"), d.get("bias_init", "torch"))

    def module(self) -> torch.nn.Sequential:
        """The equivalent `nn.Sequential` (for tracing a spec, or using one stored INR)."""
        from weightspace.examples import siren

        return siren(self.widths, self.w0)


def init_one(cfg: SirenConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One SIREN's initial weights drawn from `generator` (unstacked)."""
    out = {}
    for i, (a, b) in enumerate(zip(cfg.widths[:-1], cfg.widths[1:])):
        if i == 0 and cfg.first_init != "hidden":
            bound = 1.0 / a if cfg.first_init == "siren" else 1.0 / math.sqrt(a)
        else:
            bound = math.sqrt(6.0 / a) / cfg.w0
        out[f"{2 * i}.weight"] = (torch.rand(b, a, generator=generator) * 2 - 1) * bound
        bias = (torch.rand(b, generator=generator) * 2 - 1) / math.sqrt(a)
        out[f"{2 * i}.bias"] = bias.zero_() if cfg.bias_init == "zero" else bias
    return out


def init_stack(cfg: SirenConfig, seeds: list[int]) -> dict[str, torch.Tensor]:
    """Stacked initial weights, network i drawn from a generator seeded with seeds[i].

    Each network's init depends on its own seed only, so any chunking of a zoo
    gives the same weights.
    """
    inits = [init_one(cfg, torch.Generator().manual_seed(int(s))) for s in seeds]
    return {k: torch.stack([w[k] for w in inits]) for k in cfg.keys}


def forward(cfg: SirenConfig, params: dict[str, torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
    """Evaluate N stacked SIRENs.

    Shapes:
        params: key -> (N, out, in) weights and (N, out) biases.
        coords: (P, in) shared by every network, or (N, P, in).
        returns: (N, P, out).
    """
    n = params[cfg.keys[0]].shape[0]
    h = coords if coords.dim() == 3 else coords.unsqueeze(0).expand(n, *coords.shape)
    last = len(cfg.widths) - 2
    for i in range(len(cfg.widths) - 1):
        w, b = params[f"{2 * i}.weight"], params[f"{2 * i}.bias"]
        if i < last:  # sin(ω0·(xWᵀ + b)), the ω0 product folded into baddbmm's alpha/beta
            h = torch.sin(torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2), beta=cfg.w0, alpha=cfg.w0))
        else:
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
    return h


def grid_axes(coords: torch.Tensor) -> list[torch.Tensor] | None:
    """The per-axis values of `coords` (P, d) when it is their row-major Cartesian grid, else None."""
    if coords.dim() != 2:
        return None
    axes = [torch.unique(coords[:, m]) for m in range(coords.shape[1])]
    if math.prod(len(a) for a in axes) != coords.shape[0]:
        return None
    mesh = torch.meshgrid(*axes, indexing="ij")
    return axes if torch.equal(torch.stack([m.reshape(-1) for m in mesh], dim=-1), coords) else None


def _buffer(work: dict[str, torch.Tensor] | None, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A scratch tensor reused across steps (fresh pages cost page faults on every step)."""
    if work is None:
        return like.new_empty(shape)
    t = work.get(name)
    if t is None or t.shape != shape or t.device != like.device:
        t = work[name] = like.new_empty(shape)
    return t


def _first_sin_cos(
    cfg: SirenConfig, w: torch.Tensor, b: torch.Tensor, axes: list[torch.Tensor], work: dict[str, torch.Tensor] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """sin and cos of the first layer's ω0·(xWᵀ + b) on a grid, by angle addition over the axes.

    The pre-activation is a sum of one term per axis, so sin/cos are needed on the
    axes only (Σ n_m values per unit instead of Π n_m); combining them costs a few
    multiply-adds per grid point instead of a sin and a cos.
    """
    n, width = w.shape[0], w.shape[1]
    theta = cfg.w0 * (axes[0].view(1, -1, 1) * w[:, :, 0].unsqueeze(1) + b.unsqueeze(1))
    sin, cos = torch.sin(theta), torch.cos(theta)
    for m in range(1, len(axes)):
        t = (cfg.w0 * axes[m].view(1, -1, 1) * w[:, :, m].unsqueeze(1)).unsqueeze(1)
        s_m, c_m = torch.sin(t), torch.cos(t)
        s, c = sin.unsqueeze(2), cos.unsqueeze(2)
        shape = (n, s.shape[1], t.shape[2], width)
        last = m == len(axes) - 1
        sin = torch.mul(s, c_m, out=_buffer(work if last else None, "sin0", shape, w)).addcmul_(c, s_m).view(n, -1, width)
        cos = torch.mul(c, c_m, out=_buffer(work if last else None, "cos0", shape, w)).addcmul_(s, s_m, value=-1).view(n, -1, width)
    return sin, cos


def mse_and_grads(
    cfg: SirenConfig,
    params: dict[str, torch.Tensor],
    coords: torch.Tensor,
    targets: torch.Tensor,
    axes: list[torch.Tensor] | None = None,
    work: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-network MSE and the gradients of its sum, by a hand-written backward pass.

    The same maths as autograd through `forward` (the reference the tests compare
    against) with fewer passes over the (N, P, width) activations: ω0 is folded into
    the matmuls, each cos(z) overwrites its pre-activation, the chain-rule products
    run in place, a single output unit's weights stay a per-unit factor of the
    gradient (applied to small tensors only), with `axes` (coords =
    `grid_axes(coords)`'s grid) the first layer's sin and cos come from angle
    addition over the axes, and with `work` (an empty dict the caller keeps across
    steps) the large tensors are reused buffers.

    Shapes: as `forward`, targets (N, P, out); returns mse (N,) and key -> gradient
    (new tensors, never buffers from `work`).
    """
    n, p = targets.shape[0], targets.shape[1]
    w0, last = cfg.w0, len(cfg.widths) - 2
    inputs, cosines = [coords], []
    h = coords if coords.dim() == 3 else coords.unsqueeze(0).expand(n, *coords.shape)
    for i in range(last):
        w, b = params[f"{2 * i}.weight"], params[f"{2 * i}.bias"]
        if i == 0 and axes is not None:
            h, cos = _first_sin_cos(cfg, w, b, axes, work)
        else:
            shape = (n, p, w.shape[1])
            z = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2), beta=w0, alpha=w0, out=_buffer(work, f"z{i}", shape, w))
            h = torch.sin(z, out=_buffer(work, f"sin{i}", shape, w))
            cos = torch.cos(z, out=z)
        cosines.append(cos)
        inputs.append(h)
    w, b = params[f"{2 * last}.weight"], params[f"{2 * last}.bias"]
    err = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2), out=_buffer(work, "err", (n, p, w.shape[1]), w)).sub_(targets)
    mse = err.pow(2).mean(dim=(1, 2))
    g = err.mul_(2.0 / (err.shape[1] * err.shape[2]))  # d(sum of MSEs)/d(output)
    grads: dict[str, torch.Tensor] = {}
    scale = 1.0  # the output layer has no ω0; each hidden layer's pre-activation carries one
    unit = None  # None, or (N, 1, width) with d(sum of MSEs)/d(pre-activation) = g · unit (per unit)
    for i in range(last, -1, -1):
        w, x = params[f"{2 * i}.weight"], inputs[i]
        factor = scale if unit is None else unit.transpose(1, 2) * scale  # scalar, or (N, out, 1)
        if i == 0 and axes is not None:
            weight, bias = _first_grads(g, axes)
        elif x.dim() == 3:
            weight, bias = torch.bmm(g.transpose(1, 2), x), g.sum(dim=1)
        else:  # shared coords: (in, P) @ (N, P, out) -> (N, in, out), no copy of g
            weight, bias = torch.matmul(x.t(), g).transpose(1, 2), g.sum(dim=1)
        grads[f"{2 * i}.weight"] = weight * factor
        grads[f"{2 * i}.bias"] = bias * (factor if unit is None else factor.squeeze(2))
        if i > 0:
            buf = _buffer(work, f"grad{i % 2}", (n, p, w.shape[2]), w)
            if w.shape[1] == 1:  # one output unit: g·cos is one pass, its weights stay the per-unit factor
                g, unit = torch.mul(cosines[i - 1], g, out=buf), w * factor
            else:
                g, unit = torch.bmm(g, w * factor, out=buf).mul_(cosines[i - 1]), None
            scale = w0
    return mse, grads


def _first_grads(g: torch.Tensor, axes: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """First-layer weight and bias gradients on a grid: one partial sum of g per axis, no (P, d) matmul."""
    n, width = g.shape[0], g.shape[2]
    grid = g.view(n, *(len(a) for a in axes), width)
    dims = range(1, len(axes) + 1)
    sums = [grid.sum(dim=[d for d in dims if d != m + 1]) if len(axes) > 1 else grid for m in range(len(axes))]
    weight = torch.stack([(s * a.view(1, -1, 1)).sum(1) for s, a in zip(sums, axes)], dim=-1)
    return weight, sums[0].sum(1)


def step_flops(cfg: SirenConfig, points: int) -> int:
    """Matmul FLOPs of one `mse_and_grads` call per network on `points` coordinates.

    Forward and weight gradients 2·P·in·out per layer each, input gradients for every
    layer but the first (elementwise work, sin and cos are not counted).
    """
    macs = [a * b for a, b in zip(cfg.widths[:-1], cfg.widths[1:])]
    return 2 * points * (2 * sum(macs) + sum(macs[1:]))
