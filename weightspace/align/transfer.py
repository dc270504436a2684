"""Learning-trajectory transfer (Chijiwa, *Transferring Learning Trajectories of Neural
Networks*, ICLR 2024) on any spec.

Given a source trajectory θ₁⁰, …, θ₁ᵀ and a new init θ₂⁰, the transferred trajectory is

    θ₂ˢ = θ₂⁰ + π_s · (θ₁ˢ − θ₁⁰)

for a group element π_s of the spec, chosen by gradient matching along the trajectory
(GMT): at step s,

    π_s = argmax_π  Σ_{t<s} ⟨∇L(θ₂⁰ + π_{s−1} · (θ₁ᵗ − θ₁⁰)),  π · ∇L(θ₁ᵗ)⟩

(the minimum of Σ‖∇L(transferred point) − π·∇L(source point)‖², since π preserves
norms). GMT recomputes the target gradients at every earlier point with the newest
permutation; FGMT, the fast variant, computes each target gradient once (at the
permutation current when its point was reached) and keeps it. The sum over points is
one weight matching (`weight_matching`) on the spec with a fixed leading axis over the
points, so every group the spec records (neurons, channels, heads, residual streams)
is solved by the library's one matcher, each solve starting from the previous π.
Only permutations are matched (a spec's sign and scale symmetries are not used).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..errors import AlignError
from ..spec import Entry, Factor, GroupElement, WeightSpec
from .data import split_batch
from .modules import with_weights
from .pair import check_pair, float_keys
from .weight_matching import weight_matching

METHODS = ("gmt", "fgmt", "naive")
StateDict = Mapping[str, torch.Tensor]
Gradient = Callable[[StateDict], Mapping[str, torch.Tensor]]


@dataclass(frozen=True)
class TrajectoryTransfer:
    """Result of `transfer_trajectory`.

    trajectory: θ₂ˢ for s = 0..T (θ₂⁰ is the new init, copied); elements: π_s for s = 0..T
    (the identity at s = 0; with method "naive" the identity throughout); objectives:
    the matching objective Σ⟨target gradient, π_s · source gradient⟩ of each solve (s ≥ 1).
    """

    trajectory: list[dict[str, torch.Tensor]]
    elements: list[GroupElement]
    objectives: list[float]
    method: str


def loss_gradient(model: nn.Module, batches: Iterable[Any], loss_fn=F.cross_entropy, train: bool = True) -> Gradient:
    """A `Gradient`: state dict -> mean gradient of `loss_fn` over fixed labelled `batches`.

    The model is a template (one private copy, never modified); the same batches serve
    every point, so source and target gradients are taken on the same data, as the
    paper's synchronized gradients are. train=True evaluates in training mode (BatchNorm
    on batch statistics, the gradient training would follow).
    """
    net = with_weights(model, model.state_dict()).train(train)
    data = [split_batch(b) for b in batches]
    if not data or any(t is None for _, t in data):
        raise AlignError("loss_gradient needs at least one (inputs, targets) batch")
    names = {k for k, _ in net.named_parameters()}

    def gradient(sd: StateDict) -> dict[str, torch.Tensor]:
        params = {k: v.detach().clone().requires_grad_(True) for k, v in sd.items() if k in names}
        rest = {k: v.detach().clone() for k, v in sd.items() if k not in names}  # train-mode BatchNorm writes these
        total = 0
        for args, target in data:
            total = total + loss_fn(functional_call(net, {**rest, **params}, args), target)
        grads = torch.autograd.grad(total / len(data), list(params.values()), allow_unused=True)
        return {k: (torch.zeros_like(p) if g is None else g) for (k, p), g in zip(params.items(), grads)}

    return gradient


def _stacked_spec(spec: WeightSpec, keys: list[str], points: int) -> WeightSpec:
    """The spec over `keys` with a fixed leading axis of size `points`: one matching sums over points."""
    entries = {
        k: Entry(k, (points, *spec.entries[k].shape), ((Factor(None, points),), *spec.entries[k].axes))
        for k in keys
    }
    groups = {n: replace(g, extra=(), extra_action=()) for n, g in spec.groups.items()}
    return WeightSpec(entries, groups)


def _check(spec: WeightSpec, source: Sequence[StateDict], init: StateDict, method: str) -> list[str]:
    if method not in METHODS:
        raise AlignError(f"unknown transfer method {method!r}; expected one of {METHODS}")
    if len(source) < 2:
        raise AlignError(f"a source trajectory needs at least 2 checkpoints (an init and one more), got {len(source)}")
    for i, sd in enumerate(source):
        try:
            check_pair(init, sd, spec)
        except AlignError as err:
            raise AlignError(f"source checkpoint {i} does not fit the new init: {err}") from err
    return float_keys(spec, init, include_buffers=False)


def transfer_trajectory(
    spec: WeightSpec,
    source: Sequence[StateDict],
    init: StateDict,
    gradient: Gradient | None = None,
    *,
    method: str = "gmt",
    max_sweeps: int = 100,
    generator: torch.Generator | None = None,
) -> TrajectoryTransfer:
    """Transfer the trajectory `source` (θ₁⁰ first) to the new init `init`; see the module docstring.

    Args:
        spec: the symmetry of the checkpoints (its groups say what is permuted).
        source: checkpoints of one training run, in order, the run's init first.
        init: the new init θ₂⁰ (same keys and shapes).
        gradient: state dict -> gradient of the loss per floating parameter (e.g.
            `loss_gradient(model, batches)`); not needed for method "naive".
        method: "gmt", "fgmt" (fast: each target gradient computed once), or "naive"
            (the un-permuted updates added: the control).
        max_sweeps, generator: passed to `weight_matching`.
    Returns:
        the transferred trajectory, one state dict per source checkpoint. Floating
        parameters follow the formula; other entries (BatchNorm statistics, counters)
        are the source's, permuted by π_s (recompute statistics with `reset_batchnorm`).
    """
    keys = _check(spec, source, init, method)
    if method != "naive" and gradient is None:
        raise AlignError(f"method {method!r} needs a gradient function (e.g. loss_gradient(model, batches))")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    start = source[0]
    deltas = [{k: sd[k].detach() - start[k].detach() for k in keys} for sd in source]
    pi = spec.identity()
    base = {k: v.detach().clone() for k, v in init.items()}
    out, elements, objectives = [base], [pi], []
    source_grads: list[dict[str, torch.Tensor]] = []
    target_grads: list[dict[str, torch.Tensor]] = []

    def grad_at(sd: StateDict) -> dict[str, torch.Tensor]:
        g = gradient(sd)
        return {k: g[k].detach() for k in keys}

    def point(s: int, g: GroupElement) -> dict[str, torch.Tensor]:
        moved = spec.apply(dict(source[s]), g)
        moved.update({k: init[k].detach() + v for k, v in spec.apply(deltas[s], g, strict=False).items()})
        return moved

    for s in range(1, len(source)):
        if method != "naive":
            source_grads.append(grad_at(source[s - 1]))
            if method == "gmt":
                target_grads = [grad_at(point(t, pi)) for t in range(s)]
            else:
                target_grads.append(grad_at(point(s - 1, pi)))
            lifted = _stacked_spec(spec, keys, s)
            a = {k: torch.stack([g[k] for g in target_grads]) for k in keys}
            b = {k: torch.stack([g[k] for g in source_grads]) for k in keys}
            m = weight_matching(lifted, a, b, max_sweeps=max_sweeps, init=pi.restrict(lifted.groups), generator=gen)
            pi = m.element
            objectives.append(m.objective)
        out.append(point(s, pi))
        elements.append(pi)
    return TrajectoryTransfer(out, elements, objectives, method)
