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


class DwsSiren(nn.Module):
    """DWSNets' hidden layer (their `nn/inr.py::Siren`): sin(w0·(x Wᵀ + b)), parameters `weight`, `bias`."""

    def __init__(self, dim_in: int, dim_out: int, w0: float = 30.0):
        super().__init__()
        self.w0 = w0
        self.weight = nn.Parameter(torch.empty(dim_out, dim_in).uniform_(-(6 / dim_in) ** 0.5 / w0, (6 / dim_in) ** 0.5 / w0))
        self.bias = nn.Parameter(torch.empty(dim_out).uniform_(-0.5, 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * nn.functional.linear(x, self.weight, self.bias))


class DwsInr(nn.Module):
    """DWSNets' `INR`: `seq` = Siren layers then a Linear, output + 0.5 (keys `seq.0.weight` … `seq.2.bias`)."""

    def __init__(self, hidden: int = 32, layers: int = 3, w0: float = 30.0):
        super().__init__()
        mods = [DwsSiren(2, hidden, w0)] + [DwsSiren(hidden, hidden, w0) for _ in range(layers - 2)] + [nn.Linear(hidden, 1)]
        self.seq = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x) + 0.5


def dws_coords(size: tuple[int, int]) -> torch.Tensor:
    """DWSNets' `make_coordinates`: linspace(-1, 1) per axis, np.meshgrid "xy" indexing, flattened."""
    xs, ys = np.meshgrid(np.linspace(-1, 1, size[0]), np.linspace(-1, 1, size[1]))
    return torch.from_numpy(np.stack([xs.flatten(), ys.flatten()]).T).float()


@torch.no_grad()
def dws_image(model: DwsInr, size: tuple[int, int] = (28, 28)) -> torch.Tensor:
    """The image DWSNets renders from an INR (their `INRImageDataset`): outputs viewed as (H, W)."""
    return model(dws_coords(size)).view(*size)


def write_dwsnets(root, splits_json, nets: list[tuple[DwsInr, int, str]], elsewhere: str = "/home/someone/DWSNets/dataset") -> None:
    """A DWSNets INR folder: `<root>/mnist_png_<training|testing>_<label>_<i>/checkpoints/model_final.pth`
    (torch.save of each state dict) and a splits JSON whose paths name another machine."""
    splits = {s: {"path": [], "label": []} for s in ("train", "val", "test")}
    for i, (model, label, split) in enumerate(nets):
        folder = f"mnist_png_{'testing' if split == 'test' else 'training'}_{label}_{i}"
        (root / folder / "checkpoints").mkdir(parents=True)
        torch.save(model.state_dict(), root / folder / "checkpoints" / "model_final.pth")
        splits[split]["path"].append(f"{elsewhere}/{root.name}/{folder}/checkpoints/model_final.pth")
        splits[split]["label"].append(str(label))
    splits_json.write_text(json.dumps(splits))


def test_dwsnets_layout(tmp_path):
    """Labels and splits come from the JSON; each network becomes a SirenConfig SIREN that
    renders on our grid exactly the image DWSNets renders from the original module."""
    from zoo.datasets import grid_coords
    from zoo.features import evaluate

    torch.manual_seed(0)
    nets = [(DwsInr(hidden=8), label, split) for label, split in [(3, "train"), (5, "train"), (3, "val"), (7, "test")]]
    root = tmp_path / "mnist-inrs"
    write_dwsnets(root, tmp_path / "splits.json", nets)
    import_dwsnets(root, tmp_path / "splits.json", tmp_path / "zoo")
    zoo = Zoo(tmp_path / "zoo")
    assert zoo.column("networks", "label") == [3, 5, 3, 7]
    assert zoo.column("networks", "split") == ["train", "train", "val", "test"]
    assert zoo.keys == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    cfg = SirenConfig.from_dict(zoo.manifest["architecture"])
    assert cfg.widths == (2, 8, 8, 1) and cfg.w0 == 30.0
    assert zoo.manifest["dataset"]["grid"] == [28, 28] and zoo.manifest["dataset"]["name"] == "dwsnets-mnist"
    assert zoo.spec.provenance == "traced"
    assert "sign" in next(iter(zoo.spec.groups.values())).extra
    rendered = evaluate(cfg, zoo.stacked(), grid_coords((28, 28))).view(-1, 28, 28)
    for j, (model, _, _) in enumerate(nets):
        torch.testing.assert_close(rendered[j], dws_image(model), rtol=0, atol=1e-5)
        assert torch.equal(zoo.network(j)["2.weight"], model.seq[1].weight.detach())


def test_dwsnets_keeps_other_state_dicts(tmp_path):
    """A DWSNets layout of networks that are not a Linear chain is stored as is."""
    nets = [(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 1, 3)), i % 2, "train") for i in range(2)]
    write_dwsnets(tmp_path / "inrs", tmp_path / "splits.json", nets)
    import_dwsnets(tmp_path / "inrs", tmp_path / "splits.json", tmp_path / "zoo")
    zoo = Zoo(tmp_path / "zoo")
    assert zoo.manifest["architecture"]["type"] == "state_dict"
    for j, (model, _, _) in enumerate(nets):
        for k, v in model.state_dict().items():
            assert torch.equal(zoo.network(j)[k], v)


def test_dwsnets_grid_must_match_the_inputs(tmp_path):
    write_dwsnets(tmp_path / "inrs", tmp_path / "splits.json", [(DwsInr(hidden=4), 1, "train")])
    with pytest.raises(ImportFormatError, match="2 inputs but the render grid"):
        import_dwsnets(tmp_path / "inrs", tmp_path / "splits.json", tmp_path / "zoo", grid=(4, 4, 4))


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


def test_import_cli(tmp_path, capsys):
    """`zoo import checkpoints` writes a zoo and records its command; a bad DWSNets
    layout is reported as a named error (exit 2), not a traceback."""
    from zoo import cli

    for i in range(3):
        ws.save(_siren_sd(i), tmp_path / "src" / f"net{i}.safetensors")
    assert cli.main(["import", "checkpoints", str(tmp_path / "src"), "--out", str(tmp_path / "zoo"), "--activation", "sin"]) == 0
    zoo = Zoo(tmp_path / "zoo")
    assert len(zoo) == 3 and zoo.manifest["build"]["command"][:4] == ["weightspace", "zoo", "import", "checkpoints"]
    (tmp_path / "s.json").write_text(json.dumps({"train": {"path": ["nope/model.pth"], "label": ["1"]}}))
    assert cli.main(["import", "dwsnets", str(tmp_path), str(tmp_path / "s.json"), "--out", str(tmp_path / "z2")]) == 2
    assert "ImportFormatError: nope/model.pth" in capsys.readouterr().err
