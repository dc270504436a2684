"""Scale-out under `torchrun`: each rank builds its own shards, rank 0 writes the manifest.

Shards are assigned round-robin (shard i to rank i mod world) and every shard's
content depends only on its own networks' seeds, so K ranks produce exactly the
shards one process would. Process groups use gloo (CPU); nothing else is shared.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's rank and the world size (1 when not launched by torchrun)."""

    rank: int = 0
    world: int = 1

    def owns(self, shard: int) -> bool:
        return shard % self.world == self.rank

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.barrier()


def setup() -> Ranks:
    """Join the torchrun process group (gloo) if WORLD_SIZE > 1; else a single rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())


def teardown(ranks: Ranks) -> None:
    if ranks.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
