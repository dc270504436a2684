"""A classifier zoo as train/val/test weight tensors with accuracy targets."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tasks.training import WeightData
from weightspace.nn import metanet_spec
from weightspace.spec import WeightSpec
from zoo import ClassifierRecipe, Zoo, ZooError, build_classifier_zoo

SPLITS = ("train", "val", "test")


def ensure_zoo(
    root: Path, dataset: str = "digits", recipe: ClassifierRecipe = ClassifierRecipe(), count: int = 512,
    progress: bool = True,
) -> Path:
    """The classifier zoo in `root`, built (or resumed) with `recipe` if it is not finished."""
    root = Path(root)
    if not (root / "manifest.json").is_file():
        build_classifier_zoo(root, dataset, recipe, count=count, progress=progress)
    return root


@dataclass(frozen=True)
class TargetScale:
    """Affine map of targets to zero mean, unit variance (fitted on the training split).

    Regressing standardized targets keeps the MSE well scaled; Kendall τ and R² are
    unchanged by the map, and `invert` gives predictions in accuracy units again.
    """

    mean: float
    std: float

    @classmethod
    def fit(cls, targets: torch.Tensor) -> "TargetScale":
        return cls(float(targets.mean()), float(targets.std().clamp_min(1e-8)))

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.mean) / self.std

    def invert(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std + self.mean


@dataclass
class GeneralizationData:
    """The weights of every split (targets standardized by `scale`) and where they came from."""

    spec: WeightSpec
    splits: dict[str, WeightData]
    scale: TargetScale
    target: str
    dataset: str
    arch: str
    root: Path

    @classmethod
    def load(cls, root: Path, target: str = "test_acc") -> "GeneralizationData":
        """Read a classifier zoo; `target` is a per-network metric of its manifest."""
        z = Zoo(root)
        if z.kind != "classifier":
            raise ZooError(f"{root}: a {z.kind!r} zoo; generalization prediction needs a classifier zoo")
        values = torch.as_tensor(z.column("metrics", target), dtype=torch.float32)
        if values.dim() != 1:
            raise ZooError(f"{root}: metric {target!r} has shape {tuple(values.shape)}; expected one value per network")
        spec = metanet_spec(z.spec)
        index = {name: z.indices(name) for name in SPLITS}
        empty = [name for name, idx in index.items() if len(idx) < 2]
        if empty:
            raise ZooError(f"{root}: splits {empty} hold fewer than 2 networks; build a larger zoo")
        scale = TargetScale.fit(values[torch.as_tensor(index["train"])])
        splits = {}
        for name, idx in index.items():
            w = z.stacked(indices=idx)
            splits[name] = WeightData({k: w[k].float() for k in spec.entries}, scale(values[torch.as_tensor(idx)]))
        return cls(spec, splits, scale, target, z.manifest["dataset"]["source"], z.manifest["architecture"]["arch"], Path(root))

    def true(self, split: str) -> torch.Tensor:
        """The split's targets in their own units (e.g. accuracy)."""
        return self.scale.invert(self.splits[split].targets)
