"""zoo: build, store and read populations of trained networks (INRs, small classifiers).

    from zoo import InrRecipe, build_inr_zoo, ZooDataset
    build_inr_zoo("runs/digits", "digits", InrRecipe())     # shared init + permutation
    ds = ZooDataset("runs/digits", split="train")            # (weights, label) pairs

Imports `weightspace`; the library never imports the zoo.
"""
from .classifier_zoo import ClassifierRecipe, build_classifier_zoo
from .dataset import Zoo, ZooDataset
from .diagnose import Diagnosis, diagnose
from .importers import import_checkpoints, import_dwsnets, import_small_cnn_zoo
from weightspace.errors import ChecksumError, ImportFormatError, ZooError
from .inr_zoo import InrRecipe, build_inr_zoo
from .siren import SirenConfig

__all__ = [
    "ChecksumError",
    "ClassifierRecipe",
    "Diagnosis",
    "build_classifier_zoo",
    "diagnose",
    "import_checkpoints",
    "import_dwsnets",
    "import_small_cnn_zoo",
    "ImportFormatError",
    "InrRecipe",
    "SirenConfig",
    "Zoo",
    "ZooDataset",
    "ZooError",
    "build_inr_zoo",
]
