"""Train N small classifiers at once, each with its own seed, data order and
hyperparameters (learning rate, weight decay, width, dropout, init scale, epochs).

Every network draws its shuffles and dropout masks from its own generator and
stops at its own epoch budget (frozen by the optimizer's `active` mask), so the
result equals training it alone; metrics are recorded at checkpoint epochs.
`train_trajectory` also keeps the weights every k steps (a network past its budget
repeats its final weights), with loss and error on every evaluation set: the
trajectories that trajectory transfer and models of checkpoints learn from.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import classifier_nets as nets
from .adam import BatchedAdam
from .classifier_nets import ClassifierConfig
from .inr_trainer import flushed_denormals
from weightspace.errors import ZooError


@dataclass(frozen=True)
class Hyper:
    """Per-network hyperparameters, each a tensor of shape (N,)."""

    lr: torch.Tensor
    weight_decay: torch.Tensor
    width: torch.Tensor
    dropout: torch.Tensor
    init_scale: torch.Tensor
    epochs: torch.Tensor

    def __len__(self) -> int:
        return self.lr.shape[0]

    def row(self, i: int) -> dict:
        return {k: getattr(self, k)[i].item() for k in self.__dataclass_fields__}

    def take(self, sl) -> "Hyper":
        return Hyper(*(getattr(self, k)[sl] for k in self.__dataclass_fields__))


@dataclass(frozen=True)
class Split:
    """Inputs (S, *in_shape) and integer labels (S,)."""

    x: torch.Tensor
    y: torch.Tensor


@torch.no_grad()
def evaluate(cfg: ClassifierConfig, params: dict[str, torch.Tensor], data: Split, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(accuracy, mean cross-entropy) per network, each (N,)."""
    correct = torch.zeros(params[cfg.keys[0]].shape[0])
    loss = torch.zeros_like(correct)
    for s in range(0, len(data.y), batch):
        x, y = data.x[s : s + batch], data.y[s : s + batch]
        logits = nets.forward(cfg, params, x)
        correct += (logits.argmax(-1) == y).float().sum(1)
        loss += F.cross_entropy(logits.transpose(1, 2), y.expand(logits.shape[0], -1), reduction="none").sum(1)
    return correct / len(data.y), loss / len(data.y)


@dataclass(frozen=True)
class Trajectory:
    """Weights every `every` optimizer steps, from step 0 (the init) to the last step.

    weights: key -> (N, C, *entry shape); steps: (C,) the step of each checkpoint;
    metrics: "<set>_loss@step" / "<set>_err@step" -> (N, C).
    """

    weights: dict[str, torch.Tensor]
    steps: torch.Tensor
    metrics: dict[str, torch.Tensor]


def train(
    cfg: ClassifierConfig,
    hyper: Hyper,
    seeds: list[int],
    train_set: Split,
    eval_sets: dict[str, Split],
    checkpoints: tuple[int, ...],
    batch: int = 64,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Train stacked classifiers (single-threaded, denormals flushed); returns (init, final weights, metrics).

    metrics: "<set>_acc"/"<set>_loss" -> (N,) at the final weights, and
    "<set>_acc@ckpt"/"<set>_loss@ckpt" -> (N, len(checkpoints)).
    """
    with flushed_denormals():
        return _train(cfg, hyper, seeds, train_set, eval_sets, checkpoints, batch)[:3]


def train_trajectory(
    cfg: ClassifierConfig,
    hyper: Hyper,
    seeds: list[int],
    train_set: Split,
    eval_sets: dict[str, Split],
    checkpoints: tuple[int, ...],
    every: int,
    horizon: int,
    batch: int = 64,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor], Trajectory]:
    """`train`, plus the weights every `every` steps and at the last one, over `horizon` epochs
    (at least every network's budget), so every chunk of a zoo stores the same checkpoints."""
    if every < 1:
        raise ZooError(f"checkpoint every {every} steps: expected at least 1")
    if horizon < int(hyper.epochs.max()):
        raise ZooError(f"a trajectory over {horizon} epochs is shorter than a network's budget {int(hyper.epochs.max())}")
    with flushed_denormals():
        return _train(cfg, hyper, seeds, train_set, eval_sets, checkpoints, batch, every, horizon)


def _record(cfg: ClassifierConfig, params: dict[str, torch.Tensor], eval_sets: dict[str, Split], history: dict) -> None:
    for name, data in eval_sets.items():
        acc, ce = evaluate(cfg, params, data)
        history.setdefault(f"{name}_acc@ckpt", []).append(acc)
        history.setdefault(f"{name}_loss@ckpt", []).append(ce)


class _Recorder:
    """Keeps the weights and their metrics every `every` steps and at step `last` (nothing when every is None)."""

    def __init__(self, cfg: ClassifierConfig, eval_sets: dict[str, Split], every: int | None, last: int):
        self.cfg, self.eval_sets, self.every, self.last = cfg, eval_sets, every, last
        self.steps: list[int] = []
        self.weights: list[dict[str, torch.Tensor]] = []
        self.metrics: dict[str, list[torch.Tensor]] = {}

    def __call__(self, step: int, params: dict[str, torch.Tensor], trained_at: int) -> None:
        """Record at `step` if it is due; the weights last moved at step `trained_at`."""
        if self.every is None or (step % self.every and step != self.last):
            return
        if self.weights and self.steps[-1] >= trained_at:
            self.steps.append(step)
            self.weights.append(self.weights[-1])
            for values in self.metrics.values():
                values.append(values[-1])
            return
        self.steps.append(step)
        self.weights.append({k: v.detach().clone() for k, v in params.items()})
        for name, data in self.eval_sets.items():
            acc, ce = evaluate(self.cfg, self.weights[-1], data)
            self.metrics.setdefault(f"{name}_loss@step", []).append(ce)
            self.metrics.setdefault(f"{name}_err@step", []).append(1 - acc)

    def result(self) -> Trajectory | None:
        if self.every is None:
            return None
        weights = {k: torch.stack([w[k] for w in self.weights], dim=1) for k in self.cfg.keys}
        return Trajectory(weights, torch.tensor(self.steps), {k: torch.stack(v, dim=1) for k, v in self.metrics.items()})


def _train(cfg, hyper, seeds, train_set, eval_sets, checkpoints, batch, every=None, horizon=0):
    n = len(hyper)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    mask = nets.unit_masks(cfg, hyper.width)
    inits = [nets.init_one(cfg, g, float(sc)) for g, sc in zip(gens, hyper.init_scale)]
    init = nets.mask_weights(cfg, {k: torch.stack([w[k] for w in inits]) for k in cfg.keys}, mask)
    params = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    opt = BatchedAdam(params, lr=hyper.lr, weight_decay=hyper.weight_decay)
    size = len(train_set.y)
    steps_per_epoch = (size + batch - 1) // batch
    hidden = len(cfg.layers) - 1
    keep = (1 - hyper.dropout).clamp_min(1e-3)
    history: dict[str, list[torch.Tensor]] = {}
    last = max(int(hyper.epochs.max()), horizon, *checkpoints)
    record = _Recorder(cfg, eval_sets, every, last * steps_per_epoch)
    record(0, params, 0)
    step_count = trained_at = 0
    for epoch in range(1, last + 1):
        active = hyper.epochs >= epoch
        if not bool(active.any()):
            for _ in range(steps_per_epoch):
                step_count += 1
                record(step_count, params, trained_at)
            if epoch in checkpoints:
                _record(cfg, params, eval_sets, history)
            continue
        order = torch.stack([torch.randperm(size, generator=g) for g in gens])
        noise = torch.stack([torch.rand(steps_per_epoch, batch, hidden, cfg.width, generator=g) for g in gens])
        for step in range(steps_per_epoch):
            idx = order[:, step * batch : (step + 1) * batch]
            b = idx.shape[1]
            drop = (noise[:, step, :b] < keep.reshape(n, 1, 1, 1)).float() / keep.reshape(n, 1, 1, 1)
            logits = nets.forward(cfg, params, train_set.x[idx], mask, [drop[:, :, j] for j in range(hidden)])
            loss = F.cross_entropy(logits.transpose(1, 2), train_set.y[idx], reduction="none").mean(1)
            opt.zero_grad()
            loss.sum().backward()
            opt.step(active)
            step_count += 1
            trained_at = step_count
            record(step_count, params, trained_at)
        if epoch in checkpoints:
            _record(cfg, params, eval_sets, history)
    final = {k: v.detach() for k, v in params.items()}
    metrics: dict[str, torch.Tensor] = {}
    for name, data in eval_sets.items():
        metrics[f"{name}_acc"], metrics[f"{name}_loss"] = evaluate(cfg, final, data)
    metrics.update({k: torch.stack(v, dim=1) for k, v in history.items()})
    return init, final, metrics, record.result()
