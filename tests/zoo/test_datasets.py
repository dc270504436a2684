"""Embedded datasets: documented splits, value range, coordinates, user arrays and folders."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo import ZooError
from zoo.datasets import SPLITS, digits, from_array, from_folder, load_dataset, mnist1d


def test_digits_splits_and_range():
    d = digits()
    assert len(d) == 1797 and d.grid == (8, 8)
    assert [len(d.indices(s)) for s in SPLITS] == [1200, 300, 297]
    assert float(d.values.min()) == -1.0 and float(d.values.max()) == 1.0
    assert torch.equal(d.split, digits().split)
    c = d.coords()
    assert c.shape == (64, 2)
    assert torch.equal(c[1], torch.tensor([-1.0, -1 + 2 / 7]))
    up = d.upsampled(28)
    assert up.grid == (28, 28)
    torch.testing.assert_close(up.values[:, 0, 0], d.values[:, 0, 0])


def test_mnist1d_offline_split():
    d = mnist1d()
    assert d.grid == (40,)
    assert [len(d.indices(s)) for s in SPLITS] == [3500, 500, 1000]
    assert torch.all(d.split[4000:] == SPLITS.index("test"))


def test_array_and_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(20, 5, 6)).astype(np.uint8)
    y = np.arange(20) % 3
    a = from_array(x, y)
    assert a.grid == (5, 6) and a.classes == 3
    assert [len(a.indices(s)) for s in SPLITS] == [14, 3, 3]
    for i in range(20):
        (tmp_path / f"c{y[i]}").mkdir(exist_ok=True)
        Image.fromarray(x[i]).save(tmp_path / f"c{y[i]}" / f"{i:02d}.png")
    f = from_folder(tmp_path)
    assert len(f) == 20 and f.classes == 3
    assert torch.equal(torch.sort(f.labels).values, torch.sort(torch.from_numpy(y)).values)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    assert torch.equal(load_dataset(str(tmp_path / "d.npz")).values, a.values)
    with pytest.raises(ZooError, match="integer labels"):
        from_array(x, y.astype(float))
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "c0" / "odd.png")
    with pytest.raises(ZooError, match="different sizes"):
        from_folder(tmp_path)
