"""Streaming merges: checkpoints read lazily, one entry at a time, written shard by shard.

`merge_files` reads entry k of every model (and of the base), merges it with the same
kernel `merge_models` uses (so the two agree bit for bit), and keeps it until its
output shard is full; the shard is then written and freed. What the merge holds at
once is therefore one output shard plus one entry of each input — not N models. With
weight alignment, the anchor and one other model are in memory while that model is
matched (weight matching's objective couples every group, so it needs both whole);
the merge itself then streams as above, each entry permuted by its model's element.
The report gives both peaks, counted in tensor bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..errors import ConfigError
from ..io import load, save
from ..io.load import checkpoint_files
from ..io.paths import check_output
from ..io.save import write_atomic, write_json
from ..io.safetensors_file import SPEC_KEY
from ..spec import GroupElement, WeightSpec
from .combine import check_models, merge_entry
from .frame import element_to
from .lazy import LazyCheckpoint
from .methods import method

DEFAULT_SHARD_BYTES = 2 * 1024**3
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
_HF_SIDE_FILES = ("config.json", "generation_config.json")


@dataclass(frozen=True)
class StreamReport:
    """What a streaming merge wrote and the most tensor bytes it held at once."""

    files: tuple[Path, ...]
    model_bytes: int  # size of one model (the anchor)
    largest_entry_bytes: int
    peak_merge_bytes: int  # one output shard + one entry of each input, at most
    peak_align_bytes: int  # anchor + one model while matching (0 without alignment)
    elements: tuple[GroupElement | None, ...]


class _Shapes(Mapping):
    """Zero-size stand-ins with each entry's shape, for checking models against one another without reading them."""

    def __init__(self, ckpt: LazyCheckpoint):
        self._ckpt = ckpt
        self._keys = ckpt.keys()

    def __getitem__(self, key: str) -> torch.Tensor:
        return torch.empty(self._ckpt.shape(key), device="meta")

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def _plan(keys: list[str], ckpt: LazyCheckpoint, max_bytes: int) -> list[list[str]]:
    """Keys grouped into output shards of at most `max_bytes` (an entry larger than that gets its own shard)."""
    shards: list[list[str]] = [[]]
    size = 0
    for key in keys:
        if ckpt.alias_of(key) is not None:
            continue
        n = ckpt.nbytes(key)
        if shards[-1] and size + n > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(key)
        size += n
    by_target: dict[str, list[str]] = {}
    for key in keys:
        target = ckpt.alias_of(key)
        if target is not None:
            by_target.setdefault(target, []).append(key)
    return [[k for key in shard for k in (key, *by_target.get(key, ()))] for shard in shards]


def _targets(out: Path, n_shards: int) -> list[Path]:
    if out.name.endswith(".safetensors"):
        return [out]
    if n_shards == 1:
        return [out / SINGLE_NAME]
    return [out / f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors" for i in range(n_shards)]


def _check_folder(out: Path, targets: list[Path]) -> None:
    """A folder output must not already hold other weights, which loading it would read instead."""
    if out.name.endswith(".safetensors") or not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"{out}: the output must be a folder or a '.safetensors' file")
    mine = {t.name for t in targets} | {INDEX_NAME}
    stale = [p.name for p in out.iterdir() if p.name not in mine and p.name.endswith((".safetensors", ".bin", ".index.json"))]
    if stale:
        raise ConfigError(f"{out}: folder already holds other weights {sorted(stale)[:4]}; write into an empty folder")


def merge_files(
    paths: Sequence[str | Path],
    out: str | Path,
    method_name: str = "linear",
    *,
    base: str | Path | None = None,
    spec: WeightSpec | None = None,
    align: str = "none",
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    generator: torch.Generator | None = None,
    match: Mapping[str, Any] | None = None,
    **options,
) -> StreamReport:
    """Merge the checkpoints at `paths` into `out`, streaming; returns what was written and the peaks.

    `out` ending in `.safetensors` is one file; otherwise a folder in the Hugging Face
    layout: `model.safetensors`, or shards of at most `max_shard_bytes` plus
    `model.safetensors.index.json` (the spec, when given, in its metadata), and the first
    input folder's config.json. `align` is "none" or "weight" (needs `spec`); the anchor
    is the base when given, else model 0. Only floating-point entries are merged; integer
    buffers come from model 0. The result equals `merge_models` on the loaded models.
    """
    if align not in ("none", "weight"):
        raise ConfigError(f"streaming merges align with 'weight' or 'none', got {align!r}")
    if align == "weight" and spec is None:
        raise ConfigError("align='weight' needs the models' spec")
    if max_shard_bytes <= 0:
        raise ConfigError(f"max_shard_bytes must be positive, got {max_shard_bytes}")
    m = method(method_name)
    m.check(len(paths), base is not None, options)
    out = Path(out)
    inputs = [*paths, *([base] if base is not None else [])]
    input_files = [f for p in inputs for f in (Path(p), *checkpoint_files(p))]
    check_output(out, input_files)
    readers = [LazyCheckpoint(p) for p in paths]
    base_reader = LazyCheckpoint(base) if base is not None else None
    check_models([_Shapes(r) for r in readers], _Shapes(base_reader) if base_reader else None, spec)
    keys = readers[0].keys()
    plan = _plan(keys, readers[0], max_shard_bytes)
    targets = _targets(out, len(plan))
    for t in targets:
        check_output(t, input_files)
    _check_folder(out, targets)
    elements, peak_align = _align(align, spec, paths, base, generator, match)
    peak_merge, written, weight_map = 0, [], {}
    for shard, target in zip(plan, targets):
        tensors: dict[str, torch.Tensor] = {}
        held = 0
        for key in shard:
            target_key = readers[0].alias_of(key)
            if target_key is not None and all(r.alias_of(key) == target_key for r in readers):
                tensors[key] = tensors[target_key]
                continue
            xs = [r.get(key) for r in readers]
            xs = [x if g is None else spec.apply({key: x}, g, strict=False)[key] for x, g in zip(xs, elements)]
            b = base_reader.get(key) if base_reader is not None else None
            inputs_bytes = sum(x.numel() * x.element_size() for x in xs) + (b.numel() * b.element_size() if b is not None else 0)
            tensors[key] = merge_entry(method_name, key, xs, b, options)
            held += tensors[key].numel() * tensors[key].element_size()
            peak_merge = max(peak_merge, held + inputs_bytes)
            del xs, b
        single = len(targets) == 1
        save(tensors, target, spec=spec if single else None)
        written.append(target)
        weight_map.update({k: target.name for k in shard})
        del tensors
    if len(targets) > 1:
        meta = {"total_size": readers[0].total_bytes(), **({SPEC_KEY: spec.to_json()} if spec is not None else {})}
        written.append(write_json(out / INDEX_NAME, {"metadata": meta, "weight_map": weight_map}))
    written += _copy_side_files(paths[0], out)
    largest = max(readers[0].nbytes(k) for k in keys)
    return StreamReport(tuple(written), readers[0].total_bytes(), largest, peak_merge, peak_align, tuple(elements))


def _align(align, spec, paths, base, generator, match) -> tuple[list[GroupElement | None], int]:
    """Each model's element onto the anchor (base, else model 0), holding two models at a time."""
    if align == "none":
        return [None] * len(paths), 0
    anchor = load(base if base is not None else paths[0])
    anchor_bytes = sum(t.numel() * t.element_size() for t in anchor.values())
    elements: list[GroupElement | None] = []
    peak = anchor_bytes
    for i, p in enumerate(paths):
        if i == 0 and base is None:
            elements.append(spec.identity())
            continue
        sd = load(p)
        peak = max(peak, anchor_bytes + sum(t.numel() * t.element_size() for t in sd.values()))
        elements.append(element_to("weight", spec, anchor, sd, generator=generator, **dict(match or {})))
        del sd
    return elements, peak


def _copy_side_files(first: str | Path, out: Path) -> list[Path]:
    """config.json (and generation_config.json) of a Hugging Face input folder, copied beside the merged weights."""
    first = Path(first)
    if not first.is_dir() or out.name.endswith(".safetensors"):
        return []
    copied = []
    for name in _HF_SIDE_FILES:
        src = first / name
        if src.is_file() and not src.is_symlink():
            data = src.read_bytes()
            write_atomic(out / name, lambda tmp: tmp.write_bytes(data))
            copied.append(out / name)
    return copied
