"""The trajectory zoo the generators learn from: built when missing, read as stacked runs, split by run.

Runs in the zoo's "train" network split train the generators; runs in its "val" and
"test" splits are held out: their inits are the starting points of every evaluation and
their checkpoints the real references of similar loss, never seen in training.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from weightspace.errors import ZooError
from weightspace.spec import WeightSpec
from zoo import Zoo
from zoo.classifier_nets import ClassifierConfig
from zoo.classifier_trainer import Split
from zoo.classifier_zoo import ClassifierRecipe, build_classifier_zoo
from zoo.datasets import load_dataset
from zoo.storage import MANIFEST, TRAJECTORY_PREFIX


@dataclass(frozen=True)
class ZooSettings:
    """The trajectory zoo to build (or find): `count` runs with the zoo's sampled hyperparameters."""

    dataset: str = "digits"
    arch: str = "mlp"
    count: int = 1024
    width: int = 16
    epochs: int = 8
    every: int = 19
    seed: int = 0
    chunk: int = 256


@dataclass(frozen=True)
class TrajectoryRuns:
    """Every run of a trajectory zoo (trained on `dataset`): weights key -> (R, C, *shape), metrics name -> (R, C).

    metrics: "<set>_loss" / "<set>_err" for the data splits train, val and test; steps (C,);
    train / heldout: run indices (the zoo's train split vs its val and test splits).
    """

    root: Path
    dataset: str
    cfg: ClassifierConfig
    spec: WeightSpec
    weights: dict[str, torch.Tensor]
    metrics: dict[str, torch.Tensor]
    steps: torch.Tensor
    train: torch.Tensor
    heldout: torch.Tensor

    def runs(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The trajectories of runs `index`: key -> (len(index), C, *shape)."""
        return {k: v[index] for k, v in self.weights.items()}

    def flat(self, index: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Every checkpoint of runs `index` as one stack: (weights key -> (len*C, *shape), metrics -> (len*C,))."""
        weights = {k: v[index].flatten(0, 1) for k, v in self.weights.items()}
        return weights, {k: v[index].flatten() for k, v in self.metrics.items()}


def ensure_zoo(root: Path, settings: ZooSettings, progress: bool = False) -> Path:
    """Build the trajectory zoo in `root` unless its manifest is there (an unfinished build resumes)."""
    root = Path(root)
    if not (root / MANIFEST).exists():
        recipe = ClassifierRecipe(arch=settings.arch, max_width=settings.width, max_epochs=settings.epochs,
                                  seed=settings.seed)
        build_classifier_zoo(root, settings.dataset, recipe, count=settings.count, chunk=settings.chunk,
                             checkpoint_every=settings.every, progress=progress)
    return root


def load_runs(root: Path) -> TrajectoryRuns:
    """Read a trajectory zoo (ZooError if it stores no trajectories)."""
    zoo = Zoo(root)
    if "trajectory_steps" not in zoo.manifest:
        raise ZooError(f"{root}: not a trajectory zoo (build it with --checkpoint-every)")
    cfg = ClassifierConfig.from_dict(zoo.manifest["architecture"])
    weights = zoo.stacked(TRAJECTORY_PREFIX)
    metrics = {f"{s}_{m}": torch.tensor(zoo.column("metrics", f"{s}_{m}@step"), dtype=torch.float32)
               for s in ("train", "val", "test") for m in ("loss", "err")}
    split = np.asarray(zoo.column("networks", "split"))
    train = torch.as_tensor(np.flatnonzero(split == "train"))
    heldout = torch.as_tensor(np.flatnonzero(split != "train"))
    if len(train) == 0 or len(heldout) == 0:
        raise ZooError(f"{root}: {len(train)} training and {len(heldout)} held-out runs; need at least one of each")
    return TrajectoryRuns(Path(root), zoo.manifest["dataset"]["source"], cfg, zoo.spec, weights, metrics, torch.tensor(zoo.manifest["trajectory_steps"]),
                          train, heldout)


def data_splits(dataset: str) -> dict[str, Split]:
    """The zoo's data splits (train / val / test) of `dataset`, inputs shaped as the zoo trains on them."""
    data = load_dataset(dataset)
    x = data.values.unsqueeze(1)
    return {s: Split(x[data.indices(s)], data.labels[data.indices(s)]) for s in ("train", "val", "test")}
