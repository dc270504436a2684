"""A tiny end-to-end INR classification run: the zoo is built, models train, the
reconstruction bound learns above chance, and results.json / curves.png are written."""
from __future__ import annotations

import json
import os

import pytest

from tasks.cli import add_parser
from zoo.inr_zoo import InrRecipe, build_inr_zoo


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    out = tmp_path_factory.mktemp("inr") / "zoo"
    build_inr_zoo(out, "digits", InrRecipe(steps=60), chunk=200, limit=400, progress=False)
    return out


def _run(argv):
    import argparse

    from tasks import predict_cli

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    predict_cli.add_parser(sub)
    args = parser.parse_args(argv)
    return args.run(args)


def test_inr_classify_end_to_end(tiny_zoo, tmp_path):
    out = tmp_path / "run"
    assert _run(["run", "inr-classify", "--zoo", str(tiny_zoo), "--models", "stats", "recon_mlp", "--seeds", "0", "1",
                 "--epochs", "8", "--out", str(out), "--quiet", "--workers", "2"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "digits" and results["num_classes"] == 10
    assert set(results["models"]) == {"stats", "recon_mlp"}
    for m in results["models"].values():
        assert m["seeds"] == [0, 1] and len(m["test_acc"]) == 2
        assert all(0.0 <= a <= 1.0 for a in m["test_acc"])
        assert m["params"] > 0
    assert results["models"]["recon_mlp"]["test_acc_mean"] > 0.5  # chance is 0.1
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_saved_models_classify_checkpoints_like_in_training(tiny_zoo, tmp_path, capsys):
    """`weightspace predict` rebuilds each saved model from its config and reproduces its
    test accuracy on INR checkpoint files."""
    import torch

    import weightspace as ws
    from tasks.predict_cli import classify
    from zoo import Zoo

    out = tmp_path / "run"
    _run(["run", "inr-classify", "--zoo", str(tiny_zoo), "--models", "stats", "recon_mlp", "--seeds", "0",
          "--epochs", "3", "--out", str(out), "--quiet", "--workers", "1"])
    results = json.loads((out / "results.json").read_text())
    z = Zoo(tiny_zoo)
    test = z.indices("test")
    labels = torch.as_tensor(z.column("networks", "label"))[test]
    inrs = [z.network(int(i)) for i in test]
    for name, m in results["models"].items():
        probs = classify(out / "models" / f"{name}.safetensors", inrs)
        torch.testing.assert_close(probs.sum(1), torch.ones(len(test)))
        acc = float((probs.argmax(1) == labels).float().mean())
        assert acc == pytest.approx(m["saved"]["test_acc"], abs=1e-6), name
    path = tmp_path / "one.safetensors"
    ws.save(inrs[0], path)
    assert _run(["predict", "--metanet", str(out / "models" / "recon_mlp.safetensors"), str(path)]) == 0
    assert "one.safetensors:" in capsys.readouterr().out
    bad = tmp_path / "bad.safetensors"
    ws.save({k: v[:1] if v.ndim else v for k, v in inrs[0].items()}, bad)
    from weightspace.cli.main import main

    assert main(["predict", "--metanet", str(out / "models" / "recon_mlp.safetensors"), str(path), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "ShapeMismatchError" in err and str(bad) in err


def test_torchrun_two_processes_match_one(tiny_zoo, tmp_path):
    """The CLI under `torchrun --nproc-per-node 2` (DDP, gloo) trains like one process
    with the same global batch: same selected epoch and test accuracy up to float noise."""
    import socket
    import subprocess
    import sys

    argv = ["run", "inr-classify", "--zoo", str(tiny_zoo), "--models", "stats", "--seeds", "0", "--epochs", "6",
            "--quiet"]
    assert _run([*argv, "--out", str(tmp_path / "one"), "--workers", "1"]) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(port), "-m", "weightspace.cli.main", *argv, "--out", str(tmp_path / "two")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "results.json").read_text())["models"]["stats"]
    two = json.loads((tmp_path / "two" / "results.json").read_text())["models"]["stats"]
    assert one["test_acc_mean"] > 0.3  # chance is 0.1
    assert abs(one["test_acc_mean"] - two["test_acc_mean"]) <= 0.05
    assert abs(one["val_acc_mean"] - two["val_acc_mean"]) <= 0.05
    assert (tmp_path / "two" / "models" / "stats.safetensors").is_file()


def test_augmentation_recipes_by_name(tiny_zoo, tmp_path):
    """Named recipes pick their parts of the INR recipe; "full" adds aligned mixup and
    trains end to end; an unknown part is refused before any training."""
    from tasks.inr_classify.data import InrSplits
    from tasks.inr_classify.run import augmentation

    data = InrSplits.load(tiny_zoo)
    assert augmentation("none", data) == (None, None)
    aug, mix = augmentation("symmetry+noise", data)
    assert [type(t).__name__ for t in aug.transforms] == ["RandomSymmetry", "GaussianNoise"] and mix is None
    aug, mix = augmentation("full", data)
    assert len(aug.transforms) == 4 and mix.mode == "aligned"
    out = tmp_path / "full"
    assert _run(["run", "inr-classify", "--zoo", str(tiny_zoo), "--models", "stats", "--seeds", "0", "--epochs", "1",
                 "--augment", "full", "--out", str(out), "--quiet", "--workers", "1"]) == 0
    assert json.loads((out / "results.json").read_text())["models"]["stats"]["augment"] == "full"
    with pytest.raises(ValueError, match="unknown augmentation parts"):
        _run(["run", "inr-classify", "--zoo", str(tiny_zoo), "--models", "stats", "--augment", "symmetry+flip",
              "--out", str(tmp_path / "bad"), "--quiet"])


def test_canonical_model_ignores_sign_flips_of_real_inrs(tiny_zoo):
    """`canon_hnp_ff` and `scale_gmn` (prepare included) give the same logits for an INR and for the
    INR with its hidden units permuted and sign-flipped; the permutation-only `nfn_hnp_ff` does not."""
    import torch

    from tasks.inr_classify.data import InrSplits
    from tasks.inr_classify.models import CHOICES

    data = InrSplits.load(tiny_zoo)
    assert {g.extra for g in data.spec.groups.values()} == {("sign",)}
    w = {k: v[:6] for k, v in data.splits["train"].weights.items()}
    g = data.spec.random_element(torch.Generator().manual_seed(0), extra=True, batch_shape=(6,))
    moved = data.spec.apply(w, g, batch_dims=1)
    gaps = {}
    for name in ("canon_hnp_ff", "scale_gmn", "nfn_hnp_ff"):
        choice = CHOICES[name]
        torch.manual_seed(0)
        model, prepare = choice.build(data).eval(), choice.prepare(data)
        with torch.no_grad():
            gaps[name] = float((model(prepare(w)) - model(prepare(moved))).abs().max())
    assert max(gaps["canon_hnp_ff"], gaps["scale_gmn"]) < 1e-4 < gaps["nfn_hnp_ff"]
