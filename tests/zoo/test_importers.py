"""Importers round-trip synthetic files written in each public layout."""
from __future__ import annotations

import csv
import gzip
import json

import numpy as np
import pytest
import torch
from torch import nn

import weightspace as ws
from zoo import ImportFormatError, Zoo
from zoo.importers import import_checkpoints, import_dwsnets, import_small_cnn_zoo
from zoo.siren import SirenConfig


def _siren_sd(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in SirenConfig((2, 8, 8, 1)).module().state_dict().items()}


def test_dwsnets_layout(tmp_path):
    root = tmp_path / "mnist-inrs"
    splits = {"train": {"path": [], "label": []}, "val": {"path": [], "label": []}, "test": {"path": [], "label": []}}
    originals = []
    for i, (split, label) in enumerate([("training", 3), ("training", 5), ("training", 3), ("testing", 7)]):
        folder = root / f"mnist_png_{split}_{label}_{i}" / "checkpoints"
        folder.mkdir(parents=True)
        sd = _siren_sd(i)
        torch.save(sd, folder / "model_final.pth")
        originals.append(sd)
        part = "test" if split == "testing" else ("val" if i == 2 else "train")
        splits[part]["path"].append(f"/elsewhere/dataset/mnist-inrs/mnist_png_{split}_{label}_{i}/checkpoints/model_final.pth")
        splits[part]["label"].append(str(label))
    (tmp_path / "splits.json").write_text(json.dumps(splits))
    import_dwsnets(root, tmp_path / "splits.json", tmp_path / "zoo")
    zoo = Zoo(tmp_path / "zoo")
    assert zoo.column("networks", "label") == [3, 5, 3, 7]
    assert zoo.column("networks", "split") == ["train", "train", "val", "test"]
    assert "sign" in next(iter(zoo.spec.groups.values())).extra
    order = [0, 1, 2, 3]
    for j, i in enumerate(order):
        for k, v in originals[i].items():
            assert torch.equal(zoo.network(j)[k], v)


def test_dwsnets_missing_file_is_named(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"train": {"path": ["nope/model.pth"], "label": ["1"]}}))
    with pytest.raises(ImportFormatError, match="nope/model.pth"):
        import_dwsnets(tmp_path, tmp_path / "s.json", tmp_path / "zoo")


def _small_cnn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 2 * 2, 10))


def test_small_cnn_zoo_layout(tmp_path):
    """Torch nets -> TF layout arrays (HWIO kernels, HWC flatten) -> import -> the same functions."""
    models = [_small_cnn() for _ in range(5)]
    layout, flats = [], []
    for m in models:
        parts, layout = [], []
        start = 0
        for idx, name in ((0, "conv2d"), (2, "conv2d_1"), (5, "dense")):
            w, b = m[idx].weight.detach().numpy(), m[idx].bias.detach().numpy()
            if w.ndim == 4:
                tf_w = w.transpose(2, 3, 1, 0)
            else:
                tf_w = w.reshape(10, 6, 2, 2).transpose(0, 2, 3, 1).reshape(10, 24).T
            for var, arr in ((f"sequential/{name}/kernel:0", tf_w), (f"sequential/{name}/bias:0", b)):
                layout.append({"varname": var, "start_idx": start, "end_idx": start + arr.size, "size": arr.size, "shape": str(tuple(arr.shape))})
                parts.append(arr.reshape(-1))
                start += arr.size
        flats.append(np.concatenate(parts))
    np.save(tmp_path / "weights.npy", np.stack(flats).astype(np.float32))
    with open(tmp_path / "layout.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(layout[0]))
        w.writeheader()
        w.writerows(layout)
    rows = "test_accuracy,step,config.w_init\n" + "".join(f"{0.1 * i},86,he\n" for i in range(5))
    (tmp_path / "metrics.csv.gz").write_bytes(gzip.compress(rows.encode()))
    import_small_cnn_zoo(tmp_path, tmp_path / "zoo")
    zoo = Zoo(tmp_path / "zoo")
    assert zoo.column("metrics", "test_accuracy") == pytest.approx([0.1 * i for i in range(5)])
    assert "config.w_init" not in zoo.manifest["metrics"]
    x = torch.randn(3, 1, 6, 6)
    for i, m in enumerate(models):
        sd = zoo.network(i)
        rebuilt = _small_cnn()
        rebuilt.load_state_dict({k.replace("layers.0", "0").replace("layers.1", "2").replace("layers.2", "5"): v for k, v in sd.items()})
        with torch.no_grad():
            torch.testing.assert_close(rebuilt(x), m(x), rtol=1e-5, atol=1e-5)
    g = zoo.spec.random_element(torch.Generator().manual_seed(1))
    assert set(g.perms) == {"layers.0.out", "layers.1.out"}


def test_checkpoint_folder_with_class_folders(tmp_path):
    sds = []
    for i in range(4):
        sd = _siren_sd(10 + i)
        sds.append(sd)
        ws.save(sd, tmp_path / "src" / ("cat" if i % 2 else "dog") / f"net{i}.safetensors")
    import_checkpoints(tmp_path / "src", tmp_path / "zoo", activation="sin")
    zoo = Zoo(tmp_path / "zoo")
    names = zoo.column("networks", "class_name")
    paths = zoo.column("networks", "path")
    for j, p in enumerate(paths):
        i = int(p.split("net")[1].split(".")[0])
        assert names[j] == ("cat" if i % 2 else "dog")
        assert zoo.column("networks", "label")[j] == (0 if i % 2 else 1)
        for k, v in sds[i].items():
            assert torch.equal(zoo.network(j)[k], v)


def test_checkpoint_folder_rejects_mismatched_architectures(tmp_path):
    ws.save(_siren_sd(0), tmp_path / "src" / "a.safetensors")
    ws.save({k: v for k, v in SirenConfig((2, 4, 1)).module().state_dict().items()}, tmp_path / "src" / "b.safetensors")
    with pytest.raises(ws.WeightspaceError, match="network 1"):
        import_checkpoints(tmp_path / "src", tmp_path / "zoo")
