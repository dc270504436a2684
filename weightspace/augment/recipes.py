"""Named augmentation recipes, so tasks and benchmarks use the same pipelines."""
from __future__ import annotations

from ..spec import WeightSpec
from .base import Compose
from .inr import RandomInputAffine, first_layer
from .perturb import GaussianNoise
from .symmetry import RandomSymmetry, SirenBiasShift


def inr_recipe(spec: WeightSpec, omega0: float = 30.0, noise: float = 0.01) -> Compose:
    """The INR classification default: random group element with sign flips, SIREN bias
    shifts, a small random input-space affine map (translate 5%, rotate ±10° on 2-D
    coordinates, scale ±5%), and Gaussian noise of `noise` relative size."""
    dims = spec.entry(first_layer(spec)[0]).shape[1]
    return Compose([
        RandomSymmetry(spec),
        SirenBiasShift(spec, omega0=omega0),
        RandomInputAffine(spec, translate=0.05, degrees=10 if dims == 2 else 0, scale=(0.95, 1.05)),
        GaussianNoise(spec, std=noise),
    ])
