"""Build a zoo of small classifiers with sampled hyperparameters, for predicting
generalization from weights (the Small CNN Zoo setting of Unterthiner et al., 2020).

Each network n draws, from its own seed: learning rate (log-uniform), weight decay
(log-uniform, decoupled), hidden width (uniform in [width/4, width]), dropout
(uniform in [0, 0.5]), init scale (log-uniform in [0.5, 2]) and epochs (uniform in
[epochs/4, epochs]). Networks are assigned to train/val/test (70/15/15) by a seeded
draw too, so a metanetwork never sees test networks.

With `checkpoint_every=k` each network's weights are also stored every k optimizer
steps over the recipe's full `max_epochs` (a network past its own budget repeats its
final weights) and at the last step, under `trajectory/<key>` with shape (N, C, *entry shape), their
loss and error on train/val/test in the metrics ("<set>_loss@step", "<set>_err@step"),
and the steps in the manifest's "trajectory_steps".
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import weightspace as ws

from . import builder
from .classifier_nets import ClassifierConfig
from .classifier_trainer import Hyper, Split, train, train_trajectory
from .datasets import load_dataset
from .distributed import Ranks
from weightspace.errors import ZooError
from .inr_zoo import derived_seed
from .storage import INIT_PREFIX, TRAJECTORY_PREFIX

_PURPOSE_HYPER, _PURPOSE_TRAIN, _PURPOSE_SPLIT = 11, 12, 13


@dataclass(frozen=True)
class ClassifierRecipe:
    """Ranges of the sampled hyperparameters and the fixed training settings."""

    arch: str = "cnn"
    max_width: int = 16
    max_epochs: int = 12
    lr_range: tuple[float, float] = (3e-4, 1e-2)
    weight_decay_range: tuple[float, float] = (1e-5, 1e-1)
    dropout_max: float = 0.5
    init_scale_range: tuple[float, float] = (0.5, 2.0)
    batch: int = 64
    checkpoints: tuple[int, ...] = ()
    seed: int = 0

    def __post_init__(self):
        if self.max_width < 1 or self.max_epochs < 1:
            raise ZooError(f"max_width and max_epochs must be >= 1, got {self.max_width}, {self.max_epochs}")
        bad = [c for c in self.checkpoints if not 1 <= c <= self.max_epochs]
        if bad:
            raise ZooError(f"checkpoint epochs {bad} lie outside 1..{self.max_epochs}")

    @property
    def checkpoint_epochs(self) -> tuple[int, ...]:
        """The recorded epochs: as given, else four evenly spaced ones ending at max_epochs."""
        if self.checkpoints:
            return tuple(sorted(set(self.checkpoints)))
        return tuple(sorted({max(1, round(self.max_epochs * q / 4)) for q in (1, 2, 3, 4)}))


def _log_uniform(u: float, lo: float, hi: float) -> float:
    return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


def sample_hyper(recipe: ClassifierRecipe, networks: range) -> Hyper:
    """Each network's hyperparameters from its own seeded generator."""
    rows = []
    for j in networks:
        u = torch.rand(6, generator=torch.Generator().manual_seed(derived_seed(recipe.seed, j, _PURPOSE_HYPER))).tolist()
        lo_w, lo_e = max(1, recipe.max_width // 4), max(1, recipe.max_epochs // 4)
        rows.append([
            _log_uniform(u[0], *recipe.lr_range),
            _log_uniform(u[1], *recipe.weight_decay_range),
            lo_w + int(u[2] * (recipe.max_width - lo_w + 1)),
            u[3] * recipe.dropout_max,
            _log_uniform(u[4], *recipe.init_scale_range),
            lo_e + int(u[5] * (recipe.max_epochs - lo_e + 1)),
        ])
    t = torch.tensor(rows, dtype=torch.float64)
    return Hyper(t[:, 0].float(), t[:, 1].float(), t[:, 2].long(), t[:, 3].float(), t[:, 4].float(), t[:, 5].long())


def network_split(seed: int, j: int) -> str:
    u = np.random.default_rng(derived_seed(seed, j, _PURPOSE_SPLIT)).random()
    return "train" if u < 0.7 else ("val" if u < 0.85 else "test")


def classifier_job(
    out: Path,
    dataset: str,
    recipe: ClassifierRecipe,
    count: int,
    chunk: int = 256,
    command: list[str] | None = None,
    checkpoint_every: int | None = None,
) -> builder.BuildJob:
    """The build job of a classifier zoo on the dataset's train split (val/test for metrics).

    checkpoint_every: also store every network's weights every that many steps (a trajectory zoo).
    """
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ZooError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    data = load_dataset(dataset)
    x = data.values.unsqueeze(1)
    sets = {s: Split(x[data.indices(s)], data.labels[data.indices(s)]) for s in ("train", "val", "test")}
    cfg = ClassifierConfig(recipe.arch, tuple(x.shape[1:]), recipe.max_width, data.classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        spec = ws.parse(cfg.module(), (sets["train"].x[:4],))
    plan = {"kind": "classifier", "dataset": dataset, "count": count, "recipe": asdict(recipe), "architecture": cfg.to_dict(), "chunk": chunk}
    ckpts = recipe.checkpoint_epochs
    steps: list[int] = []
    if checkpoint_every is not None:
        plan["checkpoint_every"] = checkpoint_every
        per_epoch = -(-len(sets["train"].y) // recipe.batch)
        last = recipe.max_epochs * per_epoch
        steps = sorted({*range(0, last + 1, checkpoint_every), last})

    def make(start: int, stop: int) -> tuple[dict[str, torch.Tensor], dict]:
        nets = range(start, stop)
        hyper = sample_hyper(recipe, nets)
        seeds = [derived_seed(recipe.seed, j, _PURPOSE_TRAIN) for j in nets]
        if checkpoint_every is None:
            init, final, metrics = train(cfg, hyper, seeds, sets["train"], sets, ckpts, recipe.batch)
            trajectory = {}
        else:
            init, final, metrics, traj = train_trajectory(
                cfg, hyper, seeds, sets["train"], sets, ckpts, checkpoint_every, recipe.max_epochs, recipe.batch
            )
            trajectory = {TRAJECTORY_PREFIX + k: v for k, v in traj.weights.items()}
            metrics = {**metrics, **traj.metrics}
        tensors = {**final, **{INIT_PREFIX + k: v for k, v in init.items()}, **trajectory}
        rows = [hyper.row(i) for i in range(len(hyper))]
        content = {
            "networks": {"split": [network_split(recipe.seed, j) for j in nets], "seed": seeds},
            "hparams": {k: [r[k] for r in rows] for k in rows[0]},
            "metrics": {k: v.tolist() for k, v in metrics.items()},
        }
        return tensors, content

    def describe(merged: dict) -> dict:
        acc = np.asarray(merged["metrics"]["test_acc"])
        return {
            "kind": "classifier",
            "recipe_name": f"{recipe.arch} with sampled hyperparameters",
            "architecture": cfg.to_dict(),
            "spec": spec.to_dict(),
            "weight_keys": cfg.keys,
            "dataset": {**data.describe(), "source": dataset},
            "recipe": asdict(recipe),
            "checkpoint_epochs": list(ckpts),
            **({"trajectory_steps": steps} if checkpoint_every is not None else {}),
            "summary": {"test_acc_mean": float(acc.mean()), "test_acc_min": float(acc.min()), "test_acc_max": float(acc.max())},
        }

    return builder.BuildJob(Path(out), plan, count, chunk, make, describe, command or [])


def build_classifier_zoo(
    out: Path, dataset: str = "digits", recipe: ClassifierRecipe = ClassifierRecipe(), count: int = 256, ranks: Ranks = Ranks(), **kw
) -> dict | None:
    """Build (or resume) a classifier zoo in `out`; returns the manifest on rank 0."""
    max_shards = kw.pop("max_shards", None)
    progress = kw.pop("progress", True)
    return builder.run(classifier_job(out, dataset, recipe, count, **kw), ranks, max_shards=max_shards, progress=progress)
