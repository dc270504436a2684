"""One builder per zoo folder: a second is refused with FolderLockedError, a dead builder's lock
is taken over, shards are hashed before they are published, stale temporary files go."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from weightspace.errors import FolderLockedError
from zoo import builder, storage
from zoo.inr_zoo import InrRecipe, build_inr_zoo
from zoo.lock import LOCK, build_lock
from zoo.siren import SirenConfig

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _files(root: Path) -> dict[str, bytes]:
    """Every file of a zoo, the manifest without its timing field."""
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        data = p.read_bytes()
        if p.name == storage.MANIFEST:
            m = json.loads(data)
            m["build"].pop("seconds_this_run_rank0")
            data = json.dumps(m).encode()
        out[str(p.relative_to(root))] = data
    return out


def _job(root: Path, make=None, seed: int = 0) -> builder.BuildJob:
    """A tiny deterministic build: 5 networks of 3 numbers in shards of 2."""

    def make_shard(start: int, stop: int):
        w = torch.arange(start * 3, stop * 3, dtype=torch.float32).reshape(-1, 3) + seed
        return {"w": w}, {"networks": {"i": list(range(start, stop))}}

    describe = lambda merged: {"kind": "test", "weight_keys": ["w"]}  # noqa: E731
    return builder.BuildJob(root, {"kind": "test", "seed": seed}, 5, 2, make or make_shard, describe, ["test"])


def test_second_builder_is_refused_while_the_first_runs(tmp_path):
    """Threads: builder A blocks inside its first shard; builder B on the same folder is refused."""
    entered, release = threading.Event(), threading.Event()
    plain = _job(tmp_path / "ref").make_shard

    def slow(start, stop):
        entered.set()
        assert release.wait(30)
        return plain(start, stop)

    root = tmp_path / "z"
    results: dict = {}
    a = threading.Thread(target=lambda: results.setdefault("a", builder.run(_job(root, slow), progress=False)))
    a.start()
    assert entered.wait(30)
    with pytest.raises(FolderLockedError, match=f"pid {os.getpid()}") as info:
        builder.run(_job(root, seed=1), progress=False)
    assert str(root) in str(info.value)
    release.set()
    a.join(30)
    assert results["a"] is not None and not (root / LOCK).exists()
    builder.run(_job(tmp_path / "ref"), progress=False)
    assert _files(root) == _files(tmp_path / "ref")


def test_lock_held_by_another_process_refuses_and_writes_nothing(tmp_path):
    root = tmp_path / "z"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from zoo.lock import build_lock\n"
         f"with build_lock({str(root)!r}):\n print('held', flush=True); sys.stdin.read()"],
        cwd=ROOT, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderLockedError, match=f"pid {holder.pid}"):
            builder.run(_job(root), progress=False)
        assert sorted(p.name for p in root.iterdir()) == [LOCK]
    finally:
        holder.communicate("", timeout=30)
    assert holder.returncode == 0 and not (root / LOCK).exists()


def test_stale_lock_of_a_dead_builder_is_taken_over(tmp_path):
    root = tmp_path / "z"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    root.mkdir()
    (root / LOCK).write_text(dead.stdout)
    assert builder.run(_job(root), progress=False) is not None
    assert not (root / LOCK).exists()
    with build_lock(root):
        assert (root / LOCK).read_text().strip() == str(os.getpid())


def test_shards_are_hashed_before_they_are_published(tmp_path, monkeypatch):
    hashed: list[Path] = []
    real = storage.sha256_of

    def spy(path):
        hashed.append(Path(path))
        return real(path)

    monkeypatch.setattr(storage, "sha256_of", spy)
    builder.run(_job(tmp_path), progress=False)
    assert hashed and all(p.name.startswith(".shard-") and p.name.endswith(".tmp") for p in hashed)
    for rec in storage.finished_shards(tmp_path).values():
        assert real(tmp_path / storage.SHARDS / rec.file) == rec.sha256


def test_resume_removes_stale_temporary_files(tmp_path):
    root = tmp_path / "z"
    assert builder.run(_job(root), max_shards=1, progress=False) is None
    stale = [root / storage.SHARDS / ".shard-00001.safetensors.dead.tmp", root / ".manifest.json.dead.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    builder.run(_job(root), progress=False)
    assert not any(p.exists() for p in stale)
    builder.run(_job(tmp_path / "ref"), progress=False)
    assert _files(root) == _files(tmp_path / "ref")


TINY = ["--limit", "4", "--views", "1", "--steps", "5", "--chunk", "2", "--hidden", "8", "8", "--quiet"]


def test_two_cli_builders_race_one_is_refused_and_the_zoo_is_one_build(tmp_path):
    """Two `zoo build` processes with different seeds on one folder: exactly one succeeds,
    the other exits 2 with one line, and the zoo equals a single build of the winner."""
    root = tmp_path / "z"
    procs = {
        seed: subprocess.Popen([sys.executable, "-m", "zoo.cli", "build", "inr", "--out", str(root), *TINY,
                                "--seed", str(seed)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        for seed in (0, 1)
    }
    done = {seed: (p.wait(timeout=300), p.stderr.read()) for seed, p in procs.items()}
    for p in procs.values():
        p.stdout.close()
        p.stderr.close()
    codes = sorted(code for code, _ in done.values())
    assert codes == [0, 2], done
    winner = next(seed for seed, (code, _) in done.items() if code == 0)
    refused = done[1 - winner][1].strip()
    assert len(refused.splitlines()) == 1 and ("FolderLockedError" in refused or "different settings" in refused)
    ref = tmp_path / "ref"
    build_inr_zoo(ref, "digits", InrRecipe(views=1, steps=5, seed=winner), cfg=SirenConfig((2, 8, 8, 1)),
                  chunk=2, limit=4, progress=False)
    shards = lambda r: {p.name: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
                        for p in sorted((r / storage.SHARDS).iterdir())}
    assert shards(root) == shards(ref)
    assert json.loads((root / storage.PLAN).read_text()) == json.loads((ref / storage.PLAN).read_text())
    assert not (root / LOCK).exists()
