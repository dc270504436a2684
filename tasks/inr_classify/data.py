"""An INR zoo as train/val/test weight tensors, its renders, and input standardization."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tasks.training import WeightData
from weightspace.nn import metanet_spec
from weightspace.spec import WeightSpec
from zoo import InrRecipe, SirenConfig, Zoo, build_inr_zoo
from zoo.datasets import load_dataset
from zoo.features import evaluate

SPLITS = ("train", "val", "test")


def ensure_zoo(root: Path, dataset: str = "digits", recipe: InrRecipe = InrRecipe(), progress: bool = True) -> Path:
    """The zoo in `root`, built (or resumed) with `recipe` if it is not finished."""
    root = Path(root)
    if not (root / "manifest.json").is_file():
        build_inr_zoo(root, dataset, recipe, progress=progress)
    return root


@dataclass
class InrSplits:
    """Everything a comparison needs from one zoo."""

    spec: WeightSpec
    splits: dict[str, WeightData]
    renders: dict[str, WeightData]
    num_classes: int
    dataset: str
    recipe: str
    siren: SirenConfig

    @classmethod
    def load(cls, root: Path) -> "InrSplits":
        z = Zoo(root)
        spec = metanet_spec(z.spec)
        labels = torch.as_tensor(z.column("networks", "label"))
        cfg = SirenConfig.from_dict(z.manifest["architecture"])
        source = z.manifest["dataset"]["source"]
        coords = load_dataset(source, z.manifest["recipe"].get("upsample")).coords()
        splits, renders = {}, {}
        for name in SPLITS:
            idx = z.indices(name)
            w = z.stacked(indices=idx)
            weights = {k: w[k].float() for k in spec.entries}
            splits[name] = WeightData(weights, labels[idx])
            renders[name] = WeightData({"pixels": evaluate(cfg, weights, coords).float()}, labels[idx])
        return cls(spec, splits, renders, int(labels.max()) + 1, source, z.manifest["recipe"].get("init", "?"), cfg)


@dataclass
class Standardize:
    """Per-entry scalar mean/std from the training split, then a channel dim.

    One scalar per entry commutes with every permutation, so the models' symmetry is
    untouched; it puts the first layer (tiny weights) and the output layer on one scale.
    """

    mean: dict[str, float]
    std: dict[str, float]

    @classmethod
    def fit(cls, train: WeightData) -> "Standardize":
        return cls({k: float(v.mean()) for k, v in train.weights.items()},
                   {k: float(v.std().clamp_min(1e-8)) for k, v in train.weights.items()})

    def __call__(self, w: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: ((v - self.mean[k]) / self.std[k]).unsqueeze(1) for k, v in w.items()}
