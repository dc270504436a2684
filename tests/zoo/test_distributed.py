"""torchrun with 2 local gloo processes builds the same shards as one process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


from tests.zoo.conftest import SMALL
from zoo import Zoo
from zoo.storage import SHARDS

ROOT = Path(__file__).resolve().parents[2]


def test_torchrun_two_ranks_match_single_process(tmp_path, small_zoo):
    out = tmp_path / "z"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
        "-m", "zoo.cli", "build", "inr", "--out", str(out), "--limit", "12", "--views", "2",
        "--steps", str(SMALL["steps"]), "--chunk", "10", "--quiet",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    shards = lambda root: {p.name: p.read_bytes() for p in (root / SHARDS).glob("*.safetensors")}  # noqa: E731
    assert shards(out) == shards(small_zoo)
    zoo = Zoo(out)
    assert zoo.manifest["build"]["world_size"] == 2
    assert zoo.manifest["networks"] == Zoo(small_zoo).manifest["networks"]
