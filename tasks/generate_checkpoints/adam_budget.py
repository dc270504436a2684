"""One-step generation vs Adam: how many Adam steps from the same init reach the generated loss.

Adam runs from every held-out init at every learning rate of a small grid at once
(`zoo.adam.BatchedAdam`, one independent optimizer per network; batch 64 as the zoo's
recipe, no weight decay or dropout), all with one data order, and the evaluation loss
is recorded every `every` steps. The tuned budget is the grid's learning rate with the
smallest median steps to the targets (a target not reached counts as past the cap).
The zoo's own recipe is the second reference: the held-out run's stored trajectory from
that init (its sampled learning rate, weight decay, dropout and width).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from zoo import classifier_nets as nets
from zoo.adam import BatchedAdam
from zoo.classifier_nets import ClassifierConfig
from zoo.classifier_trainer import Split, evaluate


@dataclass(frozen=True)
class AdamCurves:
    """Evaluation loss of Adam from each init at each learning rate: loss (L, I, T) at `steps` (T,)."""

    lrs: list[float]
    steps: torch.Tensor
    loss: torch.Tensor


def adam_curves(cfg: ClassifierConfig, init: dict[str, torch.Tensor], train: Split, data: Split, lrs: list[float],
                max_steps: int, every: int, batch: int = 64, seed: int = 0) -> AdamCurves:
    """Train I inits (key -> (I, *shape)) at every learning rate for `max_steps`; loss on `data` every `every` steps."""
    n = init[cfg.keys[0]].shape[0]
    lr = torch.tensor(lrs, dtype=torch.float32).repeat_interleave(n)
    params = {k: init[k].repeat(len(lrs), *([1] * (init[k].dim() - 1))).clone().requires_grad_(True) for k in cfg.keys}
    opt = BatchedAdam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    size = len(train.y)
    order = torch.randperm(size, generator=gen)
    steps, curve = [], []
    pos = 0
    for step in range(max_steps + 1):
        if step % every == 0 or step == max_steps:
            steps.append(step)
            curve.append(evaluate(cfg, {k: v.detach() for k, v in params.items()}, data)[1])
        if step == max_steps:
            break
        if pos + batch > size:
            order, pos = torch.randperm(size, generator=gen), 0
        idx = order[pos : pos + batch]
        pos += batch
        logits = nets.forward(cfg, params, train.x[idx])
        loss = F.cross_entropy(logits.transpose(1, 2), train.y[idx].expand(logits.shape[0], -1), reduction="none").mean(1)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    loss = torch.stack(curve, dim=1).reshape(len(lrs), n, -1)
    return AdamCurves(list(lrs), torch.tensor(steps), loss)


def steps_to_reach(steps: torch.Tensor, loss: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """First recorded step where `loss` (..., T) is at most `target` (...); inf where it never is."""
    reached = loss <= target.unsqueeze(-1)
    first = reached.float().argmax(-1)
    out = steps[first].double()
    return torch.where(reached.any(-1), out, torch.full_like(out, float("inf")))


def tuned_budget(curves: AdamCurves, target: torch.Tensor) -> dict:
    """Steps to reach `target` (P, I) per learning rate, and the tuned one (smallest median, unreached = inf)."""
    per_lr = {}
    for j, lr in enumerate(curves.lrs):
        s = steps_to_reach(curves.steps, curves.loss[j].unsqueeze(0).expand(target.shape[0], -1, -1), target)
        per_lr[lr] = s
    medians = {lr: float(s.flatten().median()) for lr, s in per_lr.items()}
    best = min(medians, key=lambda lr: (medians[lr], -float(torch.isfinite(per_lr[lr]).float().mean())))
    return {"lr": best, "steps": per_lr[best], "median_per_lr": {str(lr): m for lr, m in medians.items()},
            "cap": int(curves.steps[-1])}


def summarize_steps(steps: torch.Tensor) -> dict:
    """Median, mean over reached, and fraction reached of a (P, I) or (I,) tensor of steps (inf = not reached)."""
    flat = steps.flatten()
    finite = torch.isfinite(flat)
    return {"median": float(flat.median()), "mean_reached": float(flat[finite].mean()) if bool(finite.any()) else float("inf"),
            "reached": float(finite.float().mean())}

