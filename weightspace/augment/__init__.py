"""Weight-space augmentation: composable transforms on state dicts (one sample, or a
batch with a leading dim) and on one-channel `weightspace.nn.WeightSpaceBatch`es (given
back as one), each declaring whether it preserves the function.

    from weightspace import augment as A
    t = A.Compose([A.RandomSymmetry(spec), A.SirenBiasShift(spec, omega0=30),
                   A.RandomInputAffine(spec, translate=0.1, degrees=15), A.GaussianNoise(spec, std=0.01)])
    batch = t(batch, generator)
    mixed, soft_labels = A.Mixup(spec, num_classes=10, mode="aligned")(batch, labels, generator)
"""
from .base import Compose, RandomApply, Transform
from .inr import RandomInputAffine
from .mixup import Mixup
from .perturb import GaussianNoise, MagnitudePruning, WeightDropout
from .recipes import inr_recipe
from .symmetry import RandomSymmetry, SirenBiasShift

__all__ = [
    "Compose",
    "GaussianNoise",
    "MagnitudePruning",
    "Mixup",
    "RandomApply",
    "RandomInputAffine",
    "RandomSymmetry",
    "SirenBiasShift",
    "Transform",
    "WeightDropout",
    "inr_recipe",
]
