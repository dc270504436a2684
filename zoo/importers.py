"""Importers: public zoo layouts into our format (shards + manifest + spec).

- DWSNets INRs (Navon et al., 2023): one `.pth` state dict per image, in folders
  named `mnist_png_<split>_<label>_<index>/…` (FashionMNIST: `fmnist_png_…`), listed
  with labels in a splits JSON `{"train": {"path": [...], "label": [...]}, "val": …,
  "test": …}`. Each is a SIREN `seq.0` … `seq.2` (2 → 32 → 32 → 1, sin(30·(Wx + b))
  on the hidden layers, linear output) whose forward adds 0.5, rendered on a 28×28
  grid of [-1, 1]² built with `np.meshgrid`'s "xy" indexing (first input = column).
  They become `SirenConfig` networks (`0.weight`, `0.bias`, `2.weight`, …) that
  render the same image on our row-major grid: the 0.5 folds into the last bias and
  the first layer's two input columns swap. The manifest records the grid, so
  `InrSplits.load` renders them without the source images.
- Small CNN Zoo / NFN arrays (Unterthiner et al., 2020; Zhou et al., 2023):
  `weights.npy` (N, P) flat vectors, `layout.csv` (varname, start_idx, end_idx,
  shape) in TensorFlow axis order, `metrics.csv[.gz]` with one row per network.
- A folder of checkpoints of one architecture (any format `weightspace.load` reads);
  class sub-folders, if present, give labels.

Checkpoints are read with `weightspace.load` (no pickle code runs). The spec is
traced from the SIREN for DWSNets INRs, otherwise inferred from the first network
(`weightspace.infer_spec`) unless given.
"""
from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import weightspace as ws
from weightspace.errors import OutsideFolderError
from weightspace.io.paths import allowed_roots, within
from weightspace.io.validate import MAX_CLASSES, bounded_int, read_json
from weightspace.spec import WeightSpec

from . import builder
from .datasets import SPLITS, grid_coords
from weightspace.errors import ImportFormatError, ZooError
from .siren import SirenConfig

Loader = Callable[[int], dict[str, torch.Tensor]]

DWSNETS_W0 = 30.0
DWSNETS_GRID = (28, 28)
DWSNETS_OFFSET = 0.5
INPUT_ORDERS = ("xy", "ij")


def _import(
    out: Path, source: str, count: int, load_one: Loader, spec: WeightSpec | None, activation: str | None,
    networks: dict, metrics: dict, chunk: int, manifest: dict | None = None, settings: dict | None = None,
    command: list[str] | None = None,
) -> dict:
    """Write networks 0..count-1 (from `load_one`) as a zoo; returns the manifest.

    `manifest` overrides fields of the manifest this writes (architecture, dataset,
    recipe); `settings` joins the build plan, so a resume with other settings fails.
    """
    first = load_one(0)
    spec = spec or ws.infer_spec(first, activation=activation)
    spec.check(first, where=source)
    keys = list(first)

    def make(start: int, stop: int):
        sds = [first if i == 0 else load_one(i) for i in range(start, stop)]
        for i, sd in zip(range(start, stop), sds):
            spec.check(sd, where=f"{source} network {i}")
        tensors = {k: torch.stack([sd[k].float() for sd in sds]) for k in keys}
        content = {
            "networks": {k: v[start:stop] for k, v in networks.items()},
            "metrics": {k: v[start:stop] for k, v in metrics.items()},
        }
        return tensors, content

    dataset: dict = {"name": source, "source": source}
    if "split" in networks:
        dataset["split_counts"] = {s: networks["split"].count(s) for s in SPLITS}

    def describe(merged: dict) -> dict:
        base = {
            "kind": "imported",
            "recipe_name": f"imported from {source}",
            "architecture": {"type": "state_dict", "shapes": {k: list(v.shape) for k, v in first.items()}},
            "spec": spec.to_dict(),
            "weight_keys": keys,
            "dataset": dataset,
            "recipe": {},
            "summary": {},
        }
        return {**base, **(manifest or {})}

    plan = {"kind": "imported", "source": source, "count": count, "chunk": chunk, **(settings or {})}
    job = builder.BuildJob(Path(out), plan, count, chunk, make, describe, command or ["import", source])
    return builder.run(job, progress=False)


def _resolve(root: Path, path: str, splits_json: Path) -> Path:
    """A path from a splits JSON: relative to root, re-rooted at root's name, or as written.

    Whatever form it takes, the file must be a regular file inside `root`
    (OutsideFolderError otherwise): a splits file cannot pull in checkpoints from
    elsewhere on the machine.
    """
    if not isinstance(path, str) or not path or "\x00" in path:
        raise ImportFormatError(splits_json, f"split paths must be non-empty strings, got {path!r}")
    p = Path(path)
    candidates = [root / p] if not p.is_absolute() else []
    if root.name in p.parts:
        candidates.append(root.joinpath(*p.parts[len(p.parts) - p.parts[::-1].index(root.name):]))
    candidates.append(p)
    roots = allowed_roots(root)
    for cand in candidates:
        if not cand.exists():
            continue
        if not within(cand, roots):
            raise OutsideFolderError(splits_json, f"split path {path!r} leads outside {root}; refused")
        if not cand.is_file():
            raise ImportFormatError(splits_json, f"split path {path!r} is not a regular file")
        return cand
    raise ImportFormatError(path, f"listed in the splits JSON but not found (also looked under {root})")


def _read_splits(splits_json: Path, root: Path) -> tuple[list[Path], list[int], list[str]]:
    """(paths, labels, split names) of a DWSNets splits JSON, validated."""
    splits = read_json(splits_json, "splits JSON", ImportFormatError)
    if not isinstance(splits, dict):
        raise ImportFormatError(splits_json, f"the splits JSON must be an object of splits, got {type(splits).__name__}")
    paths, labels, names = [], [], []
    for split in SPLITS:
        part = splits.get(split)
        if part is None:
            continue
        if not isinstance(part, dict) or not isinstance(part.get("path"), list) or not isinstance(part.get("label"), list) \
                or len(part["path"]) != len(part["label"]):
            raise ImportFormatError(splits_json, f"split {split!r} needs equally long 'path' and 'label' lists")
        paths += [_resolve(root, p, splits_json) for p in part["path"]]
        labels += [bounded_int(int(x) if isinstance(x, str) and x.isdecimal() and len(x) < 12 else x, splits_json,
                               f"a label of split {split!r}", hi=MAX_CLASSES - 1, error=ImportFormatError)
                   for x in part["label"]]
        names += [split] * len(part["path"])
    if not paths:
        raise ImportFormatError(splits_json, f"no networks listed under any of {SPLITS}")
    return paths, labels, names


def _module_order(path: str) -> tuple:
    """Numeric-aware sort key of a module path (`seq.10` after `seq.2`)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.split(".") if p)


def linear_chain(sd: dict[str, torch.Tensor]) -> list[str] | None:
    """Module paths of a chain of Linear layers in layer order, or None if `sd` is not one.

    A chain: every key is `<path>.weight` (out, in) or `<path>.bias` (out,), every
    path has both, and in numeric-aware path order each layer's `in` is the
    previous layer's `out` (DWSNets' `seq.0`, `seq.1`, … and our `0`, `2`, … both are).
    """
    layers: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        path, _, leaf = key.rpartition(".")
        if leaf not in ("weight", "bias"):
            return None
        layers.setdefault(path, {})[leaf] = value
    order = sorted(layers, key=_module_order)
    prev = None
    for path in order:
        w, b = layers[path].get("weight"), layers[path].get("bias")
        if w is None or b is None or w.dim() != 2 or b.shape != (w.shape[0],):
            return None
        if prev is not None and w.shape[1] != prev:
            return None
        prev = w.shape[0]
    return order or None


def _key(path: str, leaf: str) -> str:
    return f"{path}.{leaf}" if path else leaf


def to_siren(sd: dict[str, torch.Tensor], chain: list[str], offset: float = 0.0, input_order: str = "ij") -> dict[str, torch.Tensor]:
    """A Linear chain's state dict in `SirenConfig` layout (`0.weight`, `0.bias`, `2.weight`, …).

    `offset` (a constant the source model adds to its output) folds into the last
    bias; input_order "xy" (the source reads (column, row) coordinates) swaps the
    first layer's first two input columns, so the network reads our (row, column) grid.
    """
    if input_order not in INPUT_ORDERS:
        raise ZooError(f"unknown input order {input_order!r}; expected one of {INPUT_ORDERS}")
    out = {}
    for i, path in enumerate(chain):
        out[f"{2 * i}.weight"] = sd[_key(path, "weight")].float().clone()
        out[f"{2 * i}.bias"] = sd[_key(path, "bias")].float().clone()
    last = f"{2 * (len(chain) - 1)}.bias"
    out[last] = out[last] + offset
    if input_order == "xy":
        w = out["0.weight"]
        if w.shape[1] < 2:
            raise ImportFormatError(_key(chain[0], "weight"), "input order 'xy' needs at least 2 inputs")
        out["0.weight"] = torch.cat([w[:, [1, 0]], w[:, 2:]], dim=1)
    return out


def _dwsnets_name(paths: list[Path]) -> str:
    """'dwsnets-mnist' / 'dwsnets-fmnist' from the `<dataset>_png_…` folders, else 'dwsnets'."""
    for part in reversed(paths[0].parts[:-1]):
        if "_png" in part:
            return f"dwsnets-{part.split('_png')[0]}"
    return "dwsnets"


def import_dwsnets(
    root: str | Path, splits_json: str | Path, out: str | Path, activation: str | None = "sin", chunk: int = 1024,
    w0: float = DWSNETS_W0, grid: tuple[int, ...] = DWSNETS_GRID, offset: float = DWSNETS_OFFSET,
    input_order: str = "xy", name: str | None = None, command: list[str] | None = None,
) -> dict:
    """DWSNets INR folders + splits JSON -> zoo (labels and splits from the JSON).

    SIRENs (a Linear chain whose input width is the grid's dimension) are stored in
    `SirenConfig` layout with frequency `w0`, `offset` folded into the output bias and
    the inputs reordered from `input_order` to ours, and the manifest records `grid`
    so the INRs render without the source images. Any other state dict is stored as
    is, its spec inferred with `activation`.
    """
    root = Path(root)
    grid = tuple(int(g) for g in grid)
    if input_order not in INPUT_ORDERS:
        raise ZooError(f"unknown input order {input_order!r}; expected one of {INPUT_ORDERS}")
    if not grid or min(grid) < 1:
        raise ZooError(f"the render grid needs positive sizes, got {list(grid)}")
    paths, labels, names = _read_splits(Path(splits_json), root)
    networks = {"label": labels, "split": names, "path": [str(p) for p in paths]}
    source = f"dwsnets:{root}"
    first = ws.load(paths[0])
    chain = linear_chain(first)
    if chain is None:
        return _import(Path(out), source, len(paths), lambda i: ws.load(paths[i]), None, activation, networks, {}, chunk,
                       command=command)
    widths = (first[_key(chain[0], "weight")].shape[1], *(first[_key(p, "weight")].shape[0] for p in chain))
    if widths[0] != len(grid):
        raise ImportFormatError(paths[0], f"the SIREN reads {widths[0]} inputs but the render grid {list(grid)} is "
                                          f"{len(grid)}-D (positional encodings are not supported); pass a matching grid")
    cfg = SirenConfig(widths, w0)

    def load_one(i: int) -> dict[str, torch.Tensor]:
        sd = first if i == 0 else ws.load(paths[i])
        if linear_chain(sd) != chain:
            raise ImportFormatError(paths[i], f"not the SIREN of the first network ({paths[0]}: layers {chain})")
        return to_siren(sd, chain, offset, input_order)

    from .inr_zoo import siren_spec

    conversion = {"w0": float(w0), "grid": list(grid), "offset": float(offset), "input_order": input_order}
    manifest = {
        "architecture": cfg.to_dict(),
        "dataset": {"name": name or _dwsnets_name(paths), "source": source, "grid": list(grid),
                    "classes": len(set(labels)), "split_counts": {s: names.count(s) for s in SPLITS}},
        "recipe": {"init": "imported", "format": "dwsnets", **conversion},
    }
    return _import(Path(out), source, len(paths), load_one, siren_spec(cfg, grid_coords(grid)), activation, networks, {},
                   chunk, manifest=manifest, settings=conversion, command=command)


def _read_csv(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    text = gzip.decompress(raw).decode() if path.suffix == ".gz" else raw.decode()
    return list(csv.DictReader(io.StringIO(text)))


def _tf_to_torch(name: str, arr: np.ndarray) -> np.ndarray:
    """TensorFlow kernels (N, *k, in, out) / (N, in, out) to PyTorch (N, out, in, *k)."""
    if not name.endswith("kernel:0"):
        return arr
    if arr.ndim == 3:
        return arr.transpose(0, 2, 1)
    return arr.transpose(0, arr.ndim - 1, arr.ndim - 2, *range(1, arr.ndim - 2))


def import_small_cnn_zoo(folder: str | Path, out: str | Path, activation: str | None = None, chunk: int = 4096,
                         command: list[str] | None = None) -> dict:
    """Small CNN Zoo arrays (weights.npy, layout.csv, metrics.csv[.gz]) -> zoo.

    Layer i of the layout becomes `layers.i.weight` / `layers.i.bias` in PyTorch
    order. A dense layer after a conv whose input is H·W·C (TensorFlow flattens
    channels last) is reordered to PyTorch's C·H·W flatten order.
    """
    folder = Path(folder)
    wfile = folder / "weights.npy"
    lfile = folder / "layout.csv"
    mfile = next((folder / n for n in ("metrics.csv.gz", "metrics.csv") if (folder / n).is_file()), None)
    for f in (wfile, lfile):
        if not f.is_file():
            raise ImportFormatError(f, "missing (a Small CNN Zoo folder holds weights.npy, layout.csv, metrics.csv[.gz])")
    weights = np.load(wfile, mmap_mode="r")
    if weights.ndim != 2:
        raise ImportFormatError(wfile, f"expected a (networks, parameters) array, got shape {weights.shape}")
    layout = _read_csv(lfile)
    need = {"varname", "start_idx", "end_idx", "shape"}
    if not layout or not need <= set(layout[0]):
        raise ImportFormatError(lfile, f"needs columns {sorted(need)}")
    metrics_rows = _read_csv(mfile) if mfile else []
    if metrics_rows and len(metrics_rows) != len(weights):
        raise ImportFormatError(mfile, f"{len(metrics_rows)} metric rows for {len(weights)} networks")
    entries, layer = [], -1
    for row in layout:
        name = row["varname"]
        shape = tuple(int(s) for s in row["shape"].strip("()[] ").split(",") if s.strip())
        if name.endswith("kernel:0"):
            layer += 1
        elif not name.endswith("bias:0"):
            raise ImportFormatError(lfile, f"variable {name!r} is neither a kernel:0 nor a bias:0")
        entries.append((name, layer, int(row["start_idx"]), int(row["end_idx"]), shape))

    def load_one(i: int) -> dict[str, torch.Tensor]:
        flat = np.asarray(weights[i : i + 1], dtype=np.float32)
        sd, channels = {}, None
        for name, k, a, b, shape in entries:
            arr = _tf_to_torch(name, flat[:, a:b].reshape(1, *shape))[0]
            leaf = "weight" if name.endswith("kernel:0") else "bias"
            if leaf == "weight" and arr.ndim == 2 and channels and arr.shape[1] > channels and arr.shape[1] % channels == 0:
                o = arr.shape[0]
                arr = arr.reshape(o, -1, channels).transpose(0, 2, 1).reshape(o, -1)
            if leaf == "weight":
                channels = arr.shape[0] if arr.ndim > 2 else None
            sd[f"layers.{k}.{leaf}"] = torch.from_numpy(np.array(arr, dtype=np.float32, copy=True))
        return sd

    metrics: dict[str, list] = {}
    for col in metrics_rows[0] if metrics_rows else []:
        try:
            metrics[col] = [float(r[col]) for r in metrics_rows]
        except ValueError:
            continue
    n = len(weights)
    order = np.random.default_rng(0).permutation(n)
    split = np.empty(n, dtype=object)
    split[order[: int(0.7 * n)]], split[order[int(0.7 * n) : int(0.85 * n)]], split[order[int(0.85 * n) :]] = "train", "val", "test"
    return _import(Path(out), f"small-cnn-zoo:{folder}", n, load_one, None, activation, {"split": split.tolist()}, metrics, chunk,
                   command=command)


def import_checkpoints(folder: str | Path, out: str | Path, activation: str | None = None, spec: WeightSpec | None = None,
                       chunk: int = 1024, command: list[str] | None = None) -> dict:
    """Every checkpoint under `folder` (sorted); `folder/<class>/…` sub-folders give labels."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".pt", ".pth", ".bin"))
    if not files:
        raise ImportFormatError(folder, "no checkpoints (.safetensors, .pt, .pth, .bin) found")
    classes = sorted({p.relative_to(folder).parts[0] for p in files if len(p.relative_to(folder).parts) > 1})
    networks: dict[str, list] = {"path": [str(p.relative_to(folder)) for p in files]}
    if classes and all(len(p.relative_to(folder).parts) > 1 for p in files):
        networks["label"] = [classes.index(p.relative_to(folder).parts[0]) for p in files]
        networks["class_name"] = [p.relative_to(folder).parts[0] for p in files]
    n = len(files)
    order = np.random.default_rng(0).permutation(n)
    split = ["train"] * n
    for rank, i in enumerate(order):
        split[i] = "train" if rank < 0.7 * n else ("val" if rank < 0.85 * n else "test")
    networks["split"] = split
    return _import(Path(out), f"checkpoints:{folder}", n, lambda i: ws.load(files[i]), spec, activation, networks, {}, chunk,
                   command=command)
