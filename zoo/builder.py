"""The resumable, shard-by-shard build loop every zoo kind shares.

A build is a fixed list of networks cut into chunks of `chunk` networks; chunk i
becomes shard i. `make_shard(start, stop)` must depend only on the networks in
[start, stop) (their seeds), which makes resuming and `torchrun` scale-out give the
same bytes as one uninterrupted run. The main rank holds the folder's build lock
(`zoo.lock`) for the whole build, so a second builder on the same folder is refused.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from weightspace.errors import ZooError

from . import storage
from .distributed import Ranks
from .lock import build_lock

ShardMaker = Callable[[int, int], tuple[dict[str, torch.Tensor], dict]]


@dataclass
class BuildJob:
    """What to build and where.

    Args:
        root: the zoo directory.
        plan: the build's settings (JSON-able); a resume must present the same plan.
        total: number of networks.
        chunk: networks per shard.
        make_shard: (start, stop) -> (stacked tensors, content); content is
            {section: {column: per-network list}} and is merged into the manifest.
        describe: merged content -> the manifest's other fields (spec, summary, …).
        command: the exact command line, recorded in the manifest.
    """

    root: Path
    plan: dict
    total: int
    chunk: int
    make_shard: ShardMaker
    describe: Callable[[dict], dict]
    command: list[str]

    @property
    def num_shards(self) -> int:
        return (self.total + self.chunk - 1) // self.chunk


def run(job: BuildJob, ranks: Ranks = Ranks(), max_shards: int | None = None, progress: bool = True) -> dict | None:
    """Build the missing shards this rank owns, then (rank 0) write the manifest.

    max_shards stops after that many new shards without writing a manifest (a
    time-boxed build; run again to continue). Returns the manifest, or None when
    stopped early or on ranks other than 0.
    """
    if job.total < 1 or job.chunk < 1:
        raise ZooError(f"a build needs at least one network and chunk size >= 1, got {job.total} and {job.chunk}")
    root = Path(job.root)
    with build_lock(root) if ranks.is_main else nullcontext():
        return _build(job, root, ranks, max_shards, progress)


def _build(job: BuildJob, root: Path, ranks: Ranks, max_shards: int | None, progress: bool) -> dict | None:
    """The body of `run`, on the main rank under the folder's build lock."""
    if ranks.is_main:
        storage.check_plan(root, job.plan)
        storage.remove_stale_temps(root)
    ranks.barrier()
    if not ranks.is_main:
        storage.check_plan(root, job.plan)
    done = storage.finished_shards(root)
    for i, rec in done.items():
        if i >= job.num_shards or rec.count != min((i + 1) * job.chunk, job.total) - i * job.chunk:
            raise ZooError(f"{root}: finished shard {i} holds {rec.count} networks, which this build does not "
                           "produce; the folder holds another build")
    todo = [i for i in range(job.num_shards) if ranks.owns(i) and i not in done]
    started = time.perf_counter()
    built = 0
    bar = tqdm(todo, desc=f"shards (rank {ranks.rank})", unit="shard", disable=not progress, leave=False)
    for i in bar:
        if max_shards is not None and built >= max_shards:
            bar.close()
            return None
        start, stop = i * job.chunk, min((i + 1) * job.chunk, job.total)
        tensors, content = job.make_shard(start, stop)
        storage.write_shard(root, i, tensors, content)
        built += 1
    seconds = time.perf_counter() - started
    ranks.barrier()
    if not ranks.is_main:
        return None
    records = storage.finished_shards(root)
    missing = [i for i in range(job.num_shards) if i not in records]
    if missing:
        raise ZooError(f"{root}: shards {missing[:8]} were not built (did a rank fail?); run the build again")
    records_list = [records[i] for i in range(job.num_shards)]
    merged = storage.merged_content(records_list)
    manifest = {
        **job.describe(merged),
        **merged,
        "num_networks": job.total,
        "shards": [{"index": r.index, "file": r.file, "sha256": r.sha256, "count": r.count} for r in records_list],
        "build": {
            "command": list(job.command),
            "plan": job.plan,
            "world_size": ranks.world,
            "seconds_this_run_rank0": round(seconds, 3),
            "torch": torch.__version__,
        },
    }
    storage.write_manifest(root, manifest)
    return manifest
