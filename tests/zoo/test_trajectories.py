"""Trajectory zoos: checkpoints every k steps, their metrics, and exact resume (also after SIGKILL)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from zoo import Zoo, ZooError
from zoo.classifier_nets import ClassifierConfig
from zoo.classifier_trainer import evaluate, train, train_trajectory
from zoo.classifier_zoo import ClassifierRecipe, build_classifier_zoo, sample_hyper
from zoo.storage import INIT_PREFIX, SHARDS, TRAJECTORY_PREFIX

from .test_classifiers import _data

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ClassifierRecipe(arch="mlp", max_width=8, max_epochs=2, seed=5)
BUILD = dict(count=5, chunk=2, checkpoint_every=7, progress=False)


def _shard_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / SHARDS).glob("*.safetensors"))}


@pytest.fixture(scope="module")
def trajectory_zoo(tmp_path_factory):
    out = tmp_path_factory.mktemp("traj") / "zoo"
    build_classifier_zoo(out, "digits", RECIPE, **BUILD)
    return out


def test_trajectory_runs_from_init_to_final_weights_and_matches_plain_training():
    train_set, test_set = _data()
    cfg = ClassifierConfig("mlp", (1, 8, 8), 8, 10)
    hyper = sample_hyper(ClassifierRecipe(arch="mlp", max_width=8, max_epochs=3), range(3))
    assert len(set(hyper.epochs.tolist())) > 1, "networks with different budgets"
    sets = {"test": test_set}
    init, final, metrics = train(cfg, hyper, [1, 2, 3], train_set, sets, (3,), batch=32)
    init2, final2, metrics2, traj = train_trajectory(cfg, hyper, [1, 2, 3], train_set, sets, (3,), 2, 3, batch=32)
    per_epoch = 3  # 96 samples in batches of 32
    assert traj.steps.tolist() == [0, 2, 4, 6, 8, 9]
    for k in cfg.keys:
        assert torch.equal(final[k], final2[k]), "recording must not change training"
        assert torch.equal(traj.weights[k][:, 0], init[k]) and torch.equal(traj.weights[k][:, -1], final[k])
    short = int(hyper.epochs.argmin())
    frozen = [c for c, s in enumerate(traj.steps.tolist()) if s >= int(hyper.epochs[short]) * per_epoch]
    for k in cfg.keys:
        assert all(torch.equal(traj.weights[k][short, c], final[k][short]) for c in frozen)
    acc, ce = evaluate(cfg, {k: v[:, 3] for k, v in traj.weights.items()}, test_set)
    torch.testing.assert_close(traj.metrics["test_err@step"][:, 3], 1 - acc)
    torch.testing.assert_close(traj.metrics["test_loss@step"][:, -1], metrics["test_loss"])
    with pytest.raises(ZooError, match="shorter than"):
        train_trajectory(cfg, hyper, [1, 2, 3], train_set, sets, (), 2, 1)


def test_zoo_stores_trajectories_with_metrics(trajectory_zoo):
    zoo = Zoo(trajectory_zoo)
    steps = zoo.manifest["trajectory_steps"]
    assert steps[0] == 0 and steps[-1] == 2 * 19 and all(s % 7 == 0 for s in steps[:-1])
    assert zoo.manifest["build"]["plan"]["checkpoint_every"] == 7
    traj = zoo.network(4, TRAJECTORY_PREFIX)
    init, final = zoo.network(4, INIT_PREFIX), zoo.network(4)
    for k in zoo.keys:
        assert traj[k].shape == (len(steps), *final[k].shape)
        assert torch.equal(traj[k][0], init[k]) and torch.equal(traj[k][-1], final[k])
    for name in ("train", "val", "test"):
        assert len(zoo.column("metrics", f"{name}_loss@step")[4]) == len(steps)
    assert zoo.column("metrics", "test_err@step")[4][-1] == pytest.approx(1 - zoo.column("metrics", "test_acc")[4], abs=1e-6)
    assert zoo.column("metrics", "train_loss@step")[4][-1] < zoo.column("metrics", "train_loss@step")[4][0]


def test_interrupted_trajectory_build_resumes_to_identical_shards(tmp_path, trajectory_zoo):
    assert build_classifier_zoo(tmp_path, "digits", RECIPE, max_shards=1, **BUILD) is None
    assert len(_shard_bytes(tmp_path)) == 1
    build_classifier_zoo(tmp_path, "digits", RECIPE, **BUILD)
    assert _shard_bytes(tmp_path) == _shard_bytes(trajectory_zoo)
    with pytest.raises(ZooError, match="different settings"):
        build_classifier_zoo(tmp_path, "digits", RECIPE, **{**BUILD, "checkpoint_every": 5})


def test_killed_trajectory_build_resumes(tmp_path, trajectory_zoo):
    """SIGKILL a CLI build after its first shard; the re-run completes it byte-identically."""
    cmd = [sys.executable, "-m", "zoo.cli", "build", "classifiers", "--out", str(tmp_path), "--arch", "mlp",
           "--count", "5", "--chunk", "2", "--width", "8", "--epochs", "2", "--seed", "5", "--checkpoint-every", "7",
           "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    slow = subprocess.Popen([*cmd, "--max-shards", "2"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    first = tmp_path / SHARDS / "shard-00000.json"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline and slow.poll() is None:
        time.sleep(0.05)
    slow.send_signal(signal.SIGKILL)
    slow.wait()
    assert first.exists() and not (tmp_path / "manifest.json").exists()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _shard_bytes(tmp_path) == _shard_bytes(trajectory_zoo)


def test_bad_checkpoint_every_is_refused(tmp_path):
    with pytest.raises(ZooError, match="checkpoint_every"):
        build_classifier_zoo(tmp_path, "digits", RECIPE, **{**BUILD, "checkpoint_every": 0})
