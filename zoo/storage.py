"""A zoo on disk: safetensors shards of stacked tensors, a JSON sidecar per shard, a manifest.

    DIR/plan.json                     what is being built (a resume must match it)
    DIR/shards/shard-00000.safetensors  one key per state-dict entry, leading dim = network
    DIR/shards/shard-00000.json       that shard's sha256, networks, labels and metrics
    DIR/manifest.json                 spec, architecture, dataset, recipe, command, all shards

Every file is written atomically (temporary file, fsync, rename). A shard counts as
finished only once its sidecar exists, and the sidecar is written after the shard,
so a build killed at any point resumes at the first unfinished shard and never
touches finished ones. Checksums are verified when shards are read.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import safetensors.torch
import torch

from weightspace.io.save import write_atomic

from weightspace.errors import ChecksumError, ZooError

FORMAT = "weightspace.zoo"
VERSION = 1
SHARDS = "shards"
MANIFEST = "manifest.json"
PLAN = "plan.json"
INIT_PREFIX = "init/"
ELEMENT_PREFIX = "group_element/"


@dataclass(frozen=True)
class ShardRecord:
    """A finished shard: its index, file name, checksum, and what it holds (a JSON-able dict)."""

    index: int
    file: str
    sha256: str
    count: int
    content: dict


def shard_file(index: int) -> str:
    return f"shard-{index:05d}.safetensors"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=1, sort_keys=False)
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ZooError(f"{path}: missing {what}") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ZooError(f"{path}: unreadable {what}: {err}") from err


def write_shard(root: Path, index: int, tensors: Mapping[str, torch.Tensor], content: dict) -> ShardRecord:
    """Write one shard and then its sidecar, both atomically; returns the record."""
    folder = Path(root) / SHARDS
    folder.mkdir(parents=True, exist_ok=True)
    counts = {t.shape[0] for t in tensors.values()}
    if len(counts) != 1:
        raise ZooError(f"shard {index}: stacked tensors disagree on the number of networks {sorted(counts)}")
    name = shard_file(index)
    data = {k: v.detach().contiguous() for k, v in tensors.items()}
    write_atomic(folder / name, lambda tmp: safetensors.torch.save_file(data, str(tmp)))
    record = ShardRecord(index, name, sha256_of(folder / name), counts.pop(), content)
    write_json(folder / name.replace(".safetensors", ".json"), record.__dict__)
    return record


def finished_shards(root: Path) -> dict[int, ShardRecord]:
    """Shards whose sidecar and file both exist (the file is verified on read, not here)."""
    folder = Path(root) / SHARDS
    out: dict[int, ShardRecord] = {}
    if not folder.is_dir():
        return out
    for side in sorted(folder.glob("shard-*.json")):
        rec = ShardRecord(**read_json(side, "shard sidecar"))
        if (folder / rec.file).is_file():
            out[rec.index] = rec
    return out


def verify(path: Path, expected: str) -> None:
    got = sha256_of(path)
    if got != expected:
        raise ChecksumError(path, expected, got)


def check_plan(root: Path, plan: dict) -> None:
    """Record `plan` for a new build, or check that a resumed build has the same one."""
    path = Path(root) / PLAN
    if path.exists():
        old = read_json(path, "build plan")
        if old != json.loads(json.dumps(plan)):
            changed = sorted(k for k in set(old) | set(plan) if old.get(k) != json.loads(json.dumps(plan)).get(k))
            raise ZooError(
                f"{root}: holds a build with different settings ({', '.join(changed)}); "
                "resume with the same settings or build into a new directory"
            )
        return
    Path(root).mkdir(parents=True, exist_ok=True)
    write_json(path, plan)


def merged_content(records: list[ShardRecord]) -> dict:
    """Concatenate the per-network lists of every shard's content, in shard order."""
    out: dict = {}
    for rec in sorted(records, key=lambda r: r.index):
        for section, values in rec.content.items():
            dest = out.setdefault(section, {})
            for name, column in values.items():
                dest.setdefault(name, []).extend(column)
    return out


def write_manifest(root: Path, manifest: dict) -> None:
    write_json(Path(root) / MANIFEST, {"format": FORMAT, "version": VERSION, **manifest})


def read_manifest(root: Path) -> dict:
    path = Path(root) / MANIFEST
    m = read_json(path, "zoo manifest (is the build finished? resume it to write one)")
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise ZooError(f"{path}: not a weightspace zoo manifest (format tag {FORMAT!r} missing)")
    if m.get("version") != VERSION:
        raise ZooError(f"{path}: zoo format version {m.get('version')} is not supported (expected {VERSION})")
    return m
