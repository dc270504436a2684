"""Zoo storage: resume gives identical shards, corruption is caught, group elements are recorded."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.zoo.conftest import SMALL
from zoo import ChecksumError, Zoo, ZooDataset, ZooError, siren
from zoo.inr_zoo import InrRecipe, build_inr_zoo
from zoo.siren import SirenConfig
from zoo.storage import ELEMENT_PREFIX, INIT_PREFIX, SHARDS
from weightspace.spec import GroupElement

ROOT = Path(__file__).resolve().parents[2]


def _shard_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / SHARDS).glob("*.safetensors"))}


def test_interrupted_build_resumes_to_identical_shards(tmp_path, small_zoo):
    recipe = InrRecipe(views=2, **SMALL)
    assert build_inr_zoo(tmp_path, "digits", recipe, chunk=10, limit=12, max_shards=1, progress=False) is None
    assert len(_shard_bytes(tmp_path)) == 1 and not (tmp_path / "manifest.json").exists()
    (tmp_path / SHARDS / ".shard-00001.safetensors.dead.tmp").write_bytes(b"half a shard")
    build_inr_zoo(tmp_path, "digits", recipe, chunk=10, limit=12, progress=False)
    assert _shard_bytes(tmp_path) == _shard_bytes(small_zoo)
    assert Zoo(tmp_path).manifest["networks"] == Zoo(small_zoo).manifest["networks"]


def test_killed_process_resumes(tmp_path, small_zoo):
    """SIGKILL a CLI build after its first shard; the re-run completes it byte-identically."""
    cmd = [sys.executable, "-m", "zoo.cli", "build", "inr", "--out", str(tmp_path), "--limit", "12", "--views", "2",
           "--steps", str(SMALL["steps"]), "--chunk", "10", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    slow = subprocess.Popen([*cmd, "--max-shards", "2"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = tmp_path / SHARDS / "shard-00000.json"
    deadline = time.time() + 60
    while not first.exists() and time.time() < deadline and slow.poll() is None:
        time.sleep(0.05)
    slow.send_signal(signal.SIGKILL)
    slow.wait()
    assert first.exists()
    assert not (tmp_path / "manifest.json").exists()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _shard_bytes(tmp_path) == _shard_bytes(small_zoo)


def test_corrupt_shard_is_detected(tmp_path, small_zoo):
    import shutil

    shutil.copytree(small_zoo, tmp_path / "z")
    shard = tmp_path / "z" / SHARDS / "shard-00001.safetensors"
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="shard-00001.safetensors: checksum mismatch"):
        Zoo(tmp_path / "z")
    Zoo(tmp_path / "z", verify=False)


def test_resume_with_other_settings_is_refused(tmp_path):
    build_inr_zoo(tmp_path, "digits", InrRecipe(steps=5), chunk=4, limit=4, progress=False)
    with pytest.raises(ZooError, match="recipe"):
        build_inr_zoo(tmp_path, "digits", InrRecipe(steps=6), chunk=4, limit=4, progress=False)


def test_recorded_elements_undo_the_permutation(tmp_path, small_zoo):
    """Inverse of the recorded element maps each INR back onto the unpermuted build; the function never changed."""
    zoo = Zoo(small_zoo)
    build_inr_zoo(tmp_path, "digits", InrRecipe(views=2, permute=False, **SMALL), chunk=10, limit=12, progress=False)
    plain = Zoo(tmp_path).stacked()
    permuted = zoo.stacked()
    f = zoo._files[0]
    stored = {k: torch.cat([fi.get_tensor(k) for fi in zoo._files]) for k in f.keys() if k.startswith(ELEMENT_PREFIX)}
    g = GroupElement.from_tensors(stored, ELEMENT_PREFIX)
    assert sorted(g.perms) == sorted(zoo.spec.groups)
    back = zoo.spec.apply(permuted, g.inverse(), batch_dims=1)
    cfg = SirenConfig.from_dict(zoo.manifest["architecture"])
    coords = torch.rand(50, 2) * 2 - 1
    for k in zoo.keys:
        torch.testing.assert_close(back[k], plain[k], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(siren.forward(cfg, permuted, coords), siren.forward(cfg, plain, coords), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(permuted["2.weight"], plain["2.weight"])
    init_back = zoo.spec.apply(zoo.stacked(INIT_PREFIX), g.inverse(), batch_dims=1)
    assert torch.equal(init_back["0.weight"][0], init_back["0.weight"][-1]), "shared init"


def test_dataset_yields_labels_and_keeps_views_together(small_zoo):
    from zoo.datasets import digits

    data = digits()
    zoo = Zoo(small_zoo)
    samples = zoo.column("networks", "sample")
    assert samples == [j // 2 for j in range(24)]
    splits = zoo.column("networks", "split")
    assert all(splits[2 * s] == splits[2 * s + 1] for s in range(12))
    ds = ZooDataset(small_zoo, split=None)
    for i in (0, 7, 23):
        weights, label = ds[i]
        assert int(label) == int(data.labels[samples[i]])
        assert set(weights) == set(zoo.keys)
        torch.testing.assert_close(weights["2.weight"], zoo.stacked()["2.weight"][i])
    train = ZooDataset(small_zoo, split="train", target="psnr")
    assert len(train) == splits.count("train")
    assert float(train[0][1]) > 20
    with pytest.raises(ZooError, match="unknown target"):
        ZooDataset(small_zoo, target="nope")
