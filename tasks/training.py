"""One training loop for every model that reads weights: metanetworks and baselines,
classification or regression, optional augmentation and mixup, model selection on
the validation split, and DistributedDataParallel when launched under torchrun.

Under torchrun every rank draws the same global batch order and trains on its own
slice of each batch; DDP averages the gradients, so K processes take the same steps
as one process with the same global batch size.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from weightspace.errors import ShapeMismatchError

Weights = dict[str, torch.Tensor]


@dataclass
class WeightData:
    """One split: stacked weights key -> (N, *entry shape) and targets (N,)."""

    weights: Weights
    targets: torch.Tensor

    def __post_init__(self) -> None:
        for k, v in self.weights.items():
            if v.shape[0] != len(self.targets):
                raise ShapeMismatchError(k, (len(self.targets), *v.shape[1:]), tuple(v.shape),
                                         where="WeightData (weights and targets disagree in length)")

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, index: torch.Tensor) -> tuple[Weights, torch.Tensor]:
        return {k: v[index] for k, v in self.weights.items()}, self.targets[index]

    def to(self, device: torch.device | str) -> "WeightData":
        return WeightData({k: v.to(device) for k, v in self.weights.items()}, self.targets.to(device))


@dataclass
class FitConfig:
    """Optimization settings (AdamW, cosine decay, gradient clipping; label smoothing
    of the classification loss)."""

    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "cpu"
    progress: bool = True


@dataclass
class FitResult:
    """The selected model's state, when it was selected, and the curves."""

    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_val: float
    curves: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    test: float | None = None


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def kendall_tau(pred: np.ndarray, target: np.ndarray) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(pred, target).statistic)


def r_squared(pred: np.ndarray, target: np.ndarray) -> float:
    residual = float(((target - pred) ** 2).sum())
    total = float(((target - target.mean()) ** 2).sum())
    return 1.0 - residual / total if total > 0 else float("nan")


def batch_bounds(n: int, batch_size: int, min_size: int = 2) -> list[tuple[int, int]]:
    """(start, end) of each training batch: `batch_size` each, and a last batch smaller
    than `min_size` is folded into the one before, so BatchNorm never sees a batch of one
    network (per rank, under DDP) whatever the zoo size."""
    bounds = [(lo, min(lo + batch_size, n)) for lo in range(0, n, batch_size)] or [(0, 0)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_size:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


@torch.no_grad()
def predict(model: nn.Module, data: WeightData, prepare: Callable[[Weights], object], batch_size: int = 512) -> torch.Tensor:
    """Model outputs on a whole split, in eval mode."""
    model.eval()
    outs = []
    for start in range(0, len(data), batch_size):
        w, _ = data.take(torch.arange(start, min(start + batch_size, len(data))))
        outs.append(model(prepare(w)).float().cpu())
    return torch.cat(outs)


def score(model, data: WeightData, prepare, task: str) -> float:
    """Accuracy (classify) or Kendall τ (regress) on a split."""
    out = predict(model, data, prepare)
    target = data.targets.cpu()
    if task == "classify":
        return float((out.argmax(-1) == target).float().mean())
    return kendall_tau(out.squeeze(-1).numpy(), target.float().numpy())


def _loss(out: torch.Tensor, target: torch.Tensor, task: str, label_smoothing: float = 0.0) -> torch.Tensor:
    if task == "classify":  # target: class indices or mixed soft labels
        return F.cross_entropy(out, target, label_smoothing=label_smoothing)
    return F.mse_loss(out.squeeze(-1), target.float())


def fit(
    model: nn.Module,
    train: WeightData,
    val: WeightData,
    cfg: FitConfig,
    *,
    task: Literal["classify", "regress"] = "classify",
    prepare: Callable[[Weights], object] = lambda w: w,
    augment: Callable[[Weights, torch.Generator], Weights] | None = None,
    mixup: Callable | None = None,
    test: WeightData | None = None,
    desc: str = "train",
) -> FitResult:
    """Train `model` on `train`, keep the state with the best validation score.

    `prepare` turns a weight batch into the model's input (e.g. a channel dim);
    `augment(weights, generator)` runs on each training batch; `mixup(weights,
    labels, generator)` returns mixed weights and soft labels (classification).
    """
    rank, world = _rank_world()
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = model.to(device)
    train, val = train.to(device), val.to(device)
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    bounds = batch_bounds(len(train), cfg.batch_size, min_size=2 * world)
    steps_per_epoch = len(bounds)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(cfg.seed)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1_000_003 * (rank + 1))
    curves: dict[str, list[float]] = {"train_loss": [], "val": []}
    best = (-math.inf, -1, copy.deepcopy(model.state_dict()))
    start = time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc=desc, disable=not cfg.progress or rank != 0, leave=False)
    for epoch in bar:
        net.train()
        order = torch.randperm(len(train), generator=gen)
        total, count = 0.0, 0
        for lo, hi in bounds:
            index = order[lo:hi]
            index = index[rank::world] if world > 1 else index
            w, y = train.take(index.to(device))
            if augment is not None:
                w = augment(w, aug_gen)
            if mixup is not None and task == "classify" and len(y) > 1:
                w, y = mixup(w, y, aug_gen)
            loss = _loss(net(prepare(w)), y, task, cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(index)
            count += len(index)
        curves["train_loss"].append(total / max(count, 1))
        value = score(model, val, prepare, task)
        curves["val"].append(value)
        if value > best[0]:
            best = (value, epoch, copy.deepcopy(model.state_dict()))
        bar.set_postfix(loss=f"{curves['train_loss'][-1]:.3f}", val=f"{value:.3f}")
    model.load_state_dict(best[2])
    result = FitResult(best[2], best[1], best[0], curves, time.perf_counter() - start)
    if test is not None:
        result.test = score(model, test.to(device), prepare, task)
    return result

