"""Datasets the learned-optimizer tasks train on; all of them exist offline.

- scikit-learn's digits (8×8 images, 10 classes);
- MNIST-1D (Greydanus 2020), generated locally by the `mnist1d` package when installed;
- characters of the dataset descriptions scikit-learn ships (its `DESCR` strings).
Each loader returns fixed train/test splits as float32 / int64 tensors and caches them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

DESCR_LOADERS = ("load_digits", "load_iris", "load_wine", "load_breast_cancer", "load_diabetes", "load_linnerud")


@dataclass(frozen=True)
class Split:
    """A dataset's train and test tensors."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int


def _standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    return (
        torch.tensor((x_train - mean) / std, dtype=torch.float32),
        torch.tensor((x_test - mean) / std, dtype=torch.float32),
    )


@lru_cache(maxsize=None)
def digits(image: bool = False) -> Split:
    """scikit-learn digits, 1400 train / 397 test (fixed permutation); images (N, 1, 8, 8) if `image`."""
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    x, y = d.data[order].astype(np.float64), d.target[order]
    xtr, xte = _standardize(x[:1400], x[1400:])
    if image:
        xtr, xte = xtr.reshape(-1, 1, 8, 8), xte.reshape(-1, 1, 8, 8)
    yt = torch.tensor(y, dtype=torch.long)
    return Split(xtr, yt[:1400], xte, yt[1400:], 10)


def mnist1d_available() -> bool:
    try:
        import mnist1d  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=None)
def mnist1d(samples: int = 3000) -> Split:
    """MNIST-1D (40-dimensional signals, 10 classes), generated with its default seed."""
    if not mnist1d_available():
        raise ImportError("MNIST-1D tasks need the `mnist1d` package: pip install mnist1d")
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = samples
    d = make_dataset(args)
    xtr, xte = _standardize(d["x"], d["x_test"])
    return Split(xtr, torch.tensor(d["y"], dtype=torch.long), xte, torch.tensor(d["y_test"], dtype=torch.long), 10)


@lru_cache(maxsize=None)
def descr_chars(context: int = 8) -> Split:
    """Next-character prediction on scikit-learn's dataset descriptions (lowercased).

    Inputs are `context` character ids (N, context), targets the next id; the last
    20% of the text is the test split.
    """
    import sklearn.datasets as datasets

    text = "".join(getattr(datasets, name)().DESCR for name in DESCR_LOADERS).lower()
    vocab = sorted(set(text))
    ids = torch.tensor([vocab.index(c) for c in text], dtype=torch.long)
    windows = ids.unfold(0, context + 1, 1)
    x, y = windows[:, :context].contiguous(), windows[:, context].contiguous()
    cut = int(0.8 * len(y))
    return Split(x[:cut], y[:cut], x[cut + context :], y[cut + context :], len(vocab))
