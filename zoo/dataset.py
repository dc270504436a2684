"""Read a zoo: memory-mapped shards behind a torch `Dataset` of (weights, target) pairs.

    zoo = Zoo("runs/digits")               # reads the manifest, verifies every checksum
    ds = ZooDataset("runs/digits", split="train")
    weights, label = ds[0]                  # weights: {state-dict key: tensor}
"""
from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from torch.utils.data import Dataset

from weightspace.errors import SpecError
from weightspace.spec import WeightSpec

from . import storage
from weightspace.errors import ZooError


class Zoo:
    """A finished zoo directory: manifest, spec, and stacked access to its shards.

    Shards are opened with safetensors' memory map; with verify=True (the default)
    every shard's sha256 is checked against the manifest first (ChecksumError).
    """

    def __init__(self, root: str | Path, verify: bool = True):
        self.root = Path(root)
        self.manifest = storage.read_manifest(self.root)
        manifest = self.root / storage.MANIFEST
        try:
            self.spec = WeightSpec.from_dict(self.manifest["spec"])
        except SpecError as err:
            raise ZooError(f"{manifest}: the stored spec is invalid: {err}") from err
        self.keys: list[str] = list(self.manifest["weight_keys"])
        self.shards = self.manifest["shards"]
        paths = [storage.shard_path(self.root, s["file"], manifest) for s in self.shards]
        if verify:
            for path, s in zip(paths, self.shards):
                storage.verify(path, s["sha256"])
        self._files = [safe_open(str(path), framework="pt") for path in paths]
        storage.check_shards(manifest, self.spec, self.keys, self._files, self.shards)
        self._starts = list(np.cumsum([0] + [s["count"] for s in self.shards])[:-1])

    def __len__(self) -> int:
        return int(self.manifest["num_networks"])

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    def column(self, section: str, name: str) -> list:
        """A per-network column of the manifest, e.g. ("networks", "label"), ("metrics", "psnr")."""
        try:
            return self.manifest[section][name]
        except KeyError as err:
            raise ZooError(f"{self.root}: the manifest has no column {section}.{name}") from err

    def indices(self, split: str | None) -> np.ndarray:
        if split is None:
            return np.arange(len(self))
        return np.flatnonzero(np.asarray(self.column("networks", "split")) == split)

    def network(self, i: int, prefix: str = "") -> dict[str, torch.Tensor]:
        """Network i's tensors (prefix "" for weights, storage.INIT_PREFIX for its init)."""
        if not 0 <= i < len(self):
            raise IndexError(f"network {i} out of range for a zoo of {len(self)}")
        s = bisect.bisect_right(self._starts, i) - 1
        row = i - int(self._starts[s])
        f = self._files[s]
        return {k: f.get_slice(prefix + k)[row] for k in self.keys}

    def stacked(self, prefix: str = "", indices: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """Every network's tensors stacked (optionally only `indices`), key -> (N, ...)."""
        names = [prefix + k for k in self.keys]
        missing = [n for n in names if n not in self._files[0].keys()]
        if missing:
            raise ZooError(f"{self.root}: shards hold no {missing[0]!r} (built with store_init off?)")
        full = {k: torch.cat([f.get_tensor(prefix + k) for f in self._files]) for k in self.keys}
        return full if indices is None else {k: v[torch.as_tensor(indices)] for k, v in full.items()}


class ZooDataset(Dataset):
    """(weights, target) pairs of one split of a zoo.

    Args:
        root: the zoo directory.
        split: "train", "val", "test" or None for every network.
        target: "label" (int), a metric name from the manifest (float), or None for a
            dict of every label and metric of the network.
    """

    def __init__(self, root: str | Path, split: str | None = "train", target: str | None = "label", verify: bool = True):
        self.zoo = Zoo(root, verify=verify)
        self.index = self.zoo.indices(split)
        self.target = target
        m = self.zoo.manifest
        self._columns = {**m.get("networks", {}), **m.get("metrics", {})}
        if target is not None and target not in self._columns:
            raise ZooError(f"{root}: unknown target {target!r}; the manifest has {sorted(self._columns)}")

    @property
    def spec(self) -> WeightSpec:
        return self.zoo.spec

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], Any]:
        j = int(self.index[i])
        weights = self.zoo.network(j)
        if self.target is None:
            return weights, {k: v[j] for k, v in self._columns.items()}
        value = self._columns[self.target][j]
        return weights, torch.tensor(value) if isinstance(value, (int, float)) else value
