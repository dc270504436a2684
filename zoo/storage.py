"""A zoo on disk: safetensors shards of stacked tensors, a JSON sidecar per shard, a manifest.

    DIR/plan.json                     what is being built (a resume must match it)
    DIR/shards/shard-00000.safetensors  one key per state-dict entry, leading dim = network
    DIR/shards/shard-00000.json       that shard's sha256, networks, labels and metrics
    DIR/manifest.json                 spec, architecture, dataset, recipe, command, all shards

Every file is written atomically (temporary file, fsync, rename); a shard is hashed
before it is published. A shard counts as finished only once its sidecar exists, and
the sidecar is written after the shard, so a build killed at any point resumes at the
first unfinished shard and never touches finished ones. Checksums are verified when
shards are read. Sidecars and manifests are untrusted on read: every field is
validated and every file they name must lie inside the zoo.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import safetensors.torch
import torch

from weightspace.errors import ChecksumError, ZooError
from weightspace.io.paths import inside
from weightspace.io.save import write_atomic, write_json
from weightspace.io.validate import bounded_int, field, str_list
from weightspace.io.validate import read_json as read_untrusted_json

from weightspace.errors import ChecksumError, ZooError

from .lock import LOCK

FORMAT = "weightspace.zoo"
VERSION = 1
SHARDS = "shards"
MANIFEST = "manifest.json"
PLAN = "plan.json"
INIT_PREFIX = "init/"
TRAJECTORY_PREFIX = "trajectory/"
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


def zoo_error(path: Path, reason: str) -> ZooError:
    """A ZooError naming `path` (the error factory the untrusted-file readers take)."""
    return ZooError(f"{path}: {reason}")


def read_json(path: Path, what: str) -> Any:
    return read_untrusted_json(path, what, zoo_error)


def shard_path(root: Path, name: str, source: Path) -> Path:
    """A shard file named by `source` (manifest or sidecar): a regular file inside DIR/shards."""
    return inside(Path(root) / SHARDS, name, "shard file", zoo_error, source=source)


def write_shard(root: Path, index: int, tensors: Mapping[str, torch.Tensor], content: dict) -> ShardRecord:
    """Write one shard and then its sidecar, both atomically; returns the record."""
    folder = Path(root) / SHARDS
    folder.mkdir(parents=True, exist_ok=True)
    counts = {t.shape[0] for t in tensors.values()}
    if len(counts) != 1:
        raise ZooError(f"shard {index}: stacked tensors disagree on the number of networks {sorted(counts)}")
    name = shard_file(index)
    data = {k: v.detach().contiguous() for k, v in tensors.items()}
    digest: list[str] = []

    def write(tmp: Path) -> None:
        safetensors.torch.save_file(data, str(tmp))
        digest.append(sha256_of(tmp))

    write_atomic(folder / name, write)
    record = ShardRecord(index, name, digest[0], counts.pop(), content)
    write_json(folder / name.replace(".safetensors", ".json"), record.__dict__)
    return record


def _record(side: Path, doc: Any) -> ShardRecord:
    """A sidecar's record, every field checked; its file must be the shard of its index."""
    index = bounded_int(field(doc, "index", int, side, "shard sidecar", zoo_error), side, "sidecar 'index'",
                        error=zoo_error)
    name = field(doc, "file", str, side, "shard sidecar", zoo_error)
    if name != shard_file(index) or side.name != shard_file(index).replace(".safetensors", ".json"):
        raise zoo_error(side, f"sidecar of shard {index} names file {name!r}; expected {shard_file(index)!r}")
    sha = field(doc, "sha256", str, side, "shard sidecar", zoo_error)
    count = bounded_int(field(doc, "count", int, side, "shard sidecar", zoo_error), side, "sidecar 'count'",
                        lo=1, error=zoo_error)
    content = field(doc, "content", dict, side, "shard sidecar", zoo_error)
    for section, columns in content.items():
        if not isinstance(columns, dict) or not all(isinstance(c, list) and len(c) == count for c in columns.values()):
            raise zoo_error(side, f"sidecar section {section!r} must map columns to lists of {count} values")
    return ShardRecord(index, name, sha, count, content)


def finished_shards(root: Path) -> dict[int, ShardRecord]:
    """Shards whose sidecar and file both exist (the file is verified on read, not here)."""
    folder = Path(root) / SHARDS
    out: dict[int, ShardRecord] = {}
    if not folder.is_dir():
        return out
    for side in sorted(folder.glob("shard-*.json")):
        rec = _record(side, read_json(side, "shard sidecar"))
        if (folder / rec.file).exists():
            shard_path(root, rec.file, side)
            out[rec.index] = rec
    return out


def remove_stale_temps(root: Path) -> list[Path]:
    """Delete temporary files a killed build left (call only while holding the build lock)."""
    root = Path(root)
    stale = [*root.glob(".*.tmp"), *(root / SHARDS).glob(".shard-*.tmp")]
    for path in stale:
        if path.is_file() and not path.is_symlink():
            path.unlink()
    return stale


def verify(path: Path, expected: str) -> None:
    got = sha256_of(path)
    if got != expected:
        raise ChecksumError(path, expected, got)


def _ours(path: Path) -> bool:
    """Files a build leaves before its plan exists: the lock, a killed write of the plan."""
    return path.name == LOCK or (path.name.startswith(f".{PLAN}.") and path.name.endswith(".tmp"))


def check_plan(root: Path, plan: dict) -> None:
    """Record `plan` for a new build, or check that a resumed build has the same one."""
    path = Path(root) / PLAN
    if not path.exists() and Path(root).is_dir() and any(not _ours(p) for p in Path(root).iterdir()):
        raise ZooError(f"{root}: is not empty and holds no zoo build (no {PLAN}); build into a new or empty folder")
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


def check_shards(manifest: Path, spec, keys: list[str], files: list, shards: list[dict]) -> None:
    """Refuse a manifest whose spec, keys or counts do not match the tensors its shards hold."""
    for f, s in zip(files, shards):
        stored = set(f.keys())
        missing = [k for k in keys if k not in stored]
        if missing:
            raise ZooError(f"{manifest}: shard {s['file']} holds no {missing[0]!r} that 'weight_keys' lists")
        for key in keys:
            shape = tuple(f.get_slice(key).get_shape())
            if shape[:1] != (s["count"],):
                raise ZooError(f"{manifest}: shard {s['file']} stacks {shape[:1]} networks under {key!r}, "
                               f"the manifest says {s['count']}")
            if key not in spec.entries or spec.entries[key].shape != shape[1:]:
                expected = spec.entries[key].shape if key in spec.entries else "no entry"
                raise ZooError(f"{manifest}: the stored spec does not match the shards: {key!r} has shape "
                               f"{shape[1:]}, the spec {expected}")


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
    """The manifest of a finished zoo, its fields and shard list validated."""
    path = Path(root) / MANIFEST
    m = read_json(path, "zoo manifest (is the build finished? resume it to write one)")
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise ZooError(f"{path}: not a weightspace zoo manifest (format tag {FORMAT!r} missing)")
    if m.get("version") != VERSION:
        raise ZooError(f"{path}: zoo format version {m.get('version')} is not supported (expected {VERSION})")
    num = bounded_int(field(m, "num_networks", int, path, "zoo manifest", zoo_error), path, "'num_networks'",
                      lo=1, error=zoo_error)
    str_list(field(m, "weight_keys", list, path, "zoo manifest", zoo_error), path, "'weight_keys'", zoo_error)
    field(m, "spec", dict, path, "zoo manifest", zoo_error)
    for name in ("kind", "recipe_name"):
        field(m, name, str, path, "zoo manifest", zoo_error, default=None)
    for name in ("dataset", "networks", "metrics", "build"):
        field(m, name, dict, path, "zoo manifest", zoo_error, default=None)
    shards = field(m, "shards", list, path, "zoo manifest", zoo_error)
    if not shards:
        raise ZooError(f"{path}: the manifest lists no shards")
    for s in shards:
        field(s, "file", str, path, "manifest shard entry", zoo_error)
        field(s, "sha256", str, path, "manifest shard entry", zoo_error)
        bounded_int(field(s, "count", int, path, "manifest shard entry", zoo_error), path, "shard 'count'", lo=1,
                    error=zoo_error)
    if sum(s["count"] for s in shards) != num:
        raise ZooError(f"{path}: shards hold {sum(s['count'] for s in shards)} networks, 'num_networks' says {num}")
    for section in ("networks", "metrics"):
        for column, values in (m.get(section) or {}).items():
            if not isinstance(values, list) or len(values) != num:
                raise ZooError(f"{path}: column {section}.{column} must list one value per network ({num})")
    return m
