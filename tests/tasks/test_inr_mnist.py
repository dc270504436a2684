"""The main job's defaults (MNIST, independent inits), the `reads` field of every model,
a tiny end-to-end run on an MNIST subset, and users' own INRs (fitted by a plain torch
loop with another init, lr and budget) classified by `weightspace predict`."""
from __future__ import annotations

import argparse
import json

import pytest
import torch

from tasks.cli import add_parser
from tasks.inr_classify.data import MAIN_BUDGET, MAIN_INIT, zoo_recipe, zoo_siren
from tasks.inr_classify.models import CHOICES, DEFAULT, READS, Choice
from tasks.inr_classify.own_inrs import fit_own_inr
from weightspace.errors import ConfigError
from zoo import SirenConfig
from zoo.datasets import grid_coords, load_dataset


def _parser():
    from tasks import predict_cli

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    predict_cli.add_parser(sub)
    return parser


def _run(argv):
    args = _parser().parse_args(argv)
    return args.run(args)


def test_main_job_defaults_are_mnist_with_independent_inits():
    from tasks.inr_classify import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args([])
    assert (args.dataset, args.init, args.views, args.target_psnr) == ("mnist", "independent", 1, None)
    assert len(args.seeds) >= 2
    recipe = zoo_recipe(args.dataset, args.init, args.steps, args.lr, args.views, args.target_psnr)
    assert (recipe.init, recipe.views, (recipe.steps, recipe.lr)) == ("independent", 1, MAIN_BUDGET)
    control = zoo_recipe("digits", "shared")
    assert (control.init, control.permute, control.steps, control.lr) == ("shared", True, 300, 1e-3)
    given = zoo_recipe("mnist", "independent", steps=40, lr=2e-4, views=3, target_psnr=30.0)
    assert (given.steps, given.lr, given.views, given.target_psnr) == (40, 2e-4, 3, 30.0)
    main = zoo_siren("mnist", args.first_init, args.bias_init)
    assert (main.widths, main.w0, main.first_init, main.bias_init) == ((2, 32, 32, 1), 30.0, *MAIN_INIT)
    assert MAIN_INIT == ("hidden", "zero")
    assert (zoo_siren("mnist1d").widths, zoo_siren("digits").first_init, zoo_siren("digits").bias_init) == (
        (1, 32, 32, 1), "siren", "torch")
    assert zoo_siren("mnist", "siren", "torch") == SirenConfig()


def test_users_own_fit_follows_the_zoo_init_scheme():
    """`fit_own_inr` (other code than zoo.siren) draws the scheme the zoo names: at 0 steps the
    DWSNets scheme has zero biases and every layer within the hidden rule; the paper's does not."""
    image = load_dataset("mnist").values[0]
    field = fit_own_inr(image, seed=3, steps=0, lr=1e-3, cfg=SirenConfig(first_init="hidden", bias_init="zero"))
    paper = fit_own_inr(image, seed=3, steps=0, lr=1e-3)
    assert all(float(field[k].abs().max()) == 0.0 for k in ("0.bias", "2.bias", "4.bias"))
    assert float(field["0.weight"].abs().max()) <= (6 / 2) ** 0.5 / 30 < float(paper["0.weight"].abs().max())
    assert float(paper["0.bias"].abs().max()) > 0.0


def test_every_model_states_what_it_reads():
    assert {c.reads for c in CHOICES.values()} <= set(READS)
    assert CHOICES["recon_mlp"].reads == "pixels"
    assert CHOICES["gmn_probe"].reads == CHOICES["gmn_probe_rand"].reads == "probes"
    assert all(CHOICES[n].reads == "weights" for n in ("flat_mlp", "stats", "nfn_hnp_ff"))
    assert {CHOICES[n].reads for n in DEFAULT} == set(READS)
    with pytest.raises(ConfigError, match="reads 'image'"):
        Choice("bad", "image", CHOICES["stats"].build)


def test_probe_model_trains_with_the_digit_augmentation_and_label_smoothing():
    """gmn_probe's regularizers (tasks/RESULTS.md: validation 91.5 -> 93.5% on the main zoo):
    the input-space affine map (exact in weight space) and smoothed labels; no other model smooths."""
    from tasks.inr_classify.run import Settings, augment_name

    probe = CHOICES["gmn_probe"]
    assert (probe.augment, probe.label_smoothing) == ("affine", 0.1)
    assert augment_name(probe, Settings()) == "affine"
    assert augment_name(probe, Settings(augment="none")) == "none"
    assert all(CHOICES[n].label_smoothing == 0.0 for n in DEFAULT if n != "gmn_probe")


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    """The CLI on 300 MNIST images (60 fitting steps), stats and recon_mlp, one seed."""
    out = tmp_path_factory.mktemp("mnist") / "run"
    assert _run(["run", "inr-classify", "--limit", "300", "--steps", "60", "--models", "stats", "recon_mlp",
                 "--seeds", "0", "--epochs", "10", "--out", str(out), "--quiet", "--workers", "1"]) == 0
    return out


@pytest.mark.slow
def test_tiny_mnist_run_learns_above_chance(mnist_run):
    results = json.loads((mnist_run / "results.json").read_text())
    manifest = json.loads((mnist_run / "zoo" / "manifest.json").read_text())
    assert manifest["dataset"]["source"] == "mnist" and manifest["recipe"]["init"] == "independent"
    assert manifest["recipe"]["steps"] == 60
    assert (manifest["architecture"]["first_init"], manifest["architecture"]["bias_init"]) == MAIN_INIT
    assert results["dataset"] == "mnist" and results["recipe"] == "independent"
    assert sum(results["sizes"].values()) == 300
    assert {n: m["reads"] for n, m in results["models"].items()} == {"stats": "weights", "recon_mlp": "pixels"}
    assert results["models"]["recon_mlp"]["test_acc_mean"] > 0.5  # chance is 0.1


@pytest.mark.slow
def test_users_own_inrs_classify_like_the_zoo(mnist_run, tmp_path, capsys):
    """INRs of test images fitted by other code (another init, lr 5e-4, 100 steps) are
    classified by the saved pixel model about as well as the zoo's own test INRs; an INR
    of [0, 1] pixels reads the same once `--pixel-range 0 1` is given."""
    from tasks.predict_cli import classify

    data = load_dataset("mnist")
    test = torch.nonzero(data.split == 2).flatten()[:8]
    labels = data.labels[test]
    own = [fit_own_inr(data.values[int(i)], seed=100 + k, steps=100, lr=5e-4) for k, i in enumerate(test)]
    metanet = mnist_run / "models" / "recon_mlp.safetensors"
    probs = classify(metanet, own)
    acc = float((probs.argmax(1) == labels).float().mean())
    zoo_acc = json.loads((mnist_run / "results.json").read_text())["models"]["recon_mlp"]["saved"]["test_acc"]
    assert acc >= min(0.5, zoo_acc - 0.25), (acc, zoo_acc)

    signed = own[0]
    last_w, last_b = list(signed)[-2:]
    unit = {**signed, last_w: signed[last_w] / 2, last_b: (signed[last_b] + 1) / 2}  # the same INR on [0, 1]
    torch.testing.assert_close(classify(metanet, [unit], pixel_range=(0.0, 1.0)), probs[:1])
    path = tmp_path / "mine.pt"
    torch.save(unit, path)
    assert _run(["predict", "--metanet", str(metanet), "--pixel-range", "0", "1", str(path)]) == 0
    assert "mine.pt:" in capsys.readouterr().out


def test_probe_grid_keeps_small_grids_and_subsamples_large_ones():
    from tasks.inr_classify.models import MAX_PROBES, probe_grid

    torch.testing.assert_close(probe_grid((8, 8), MAX_PROBES), grid_coords((8, 8)))
    torch.testing.assert_close(probe_grid((40,), MAX_PROBES), grid_coords((40,)))
    torch.testing.assert_close(probe_grid((28, 28), MAX_PROBES), grid_coords((28, 28)))
    full = grid_coords((28, 28)).view(28, 28, 2)
    torch.testing.assert_close(probe_grid((28, 28), 196), full[1::2, 1::2].reshape(-1, 2))
    assert probe_grid((28, 28), 49).shape == (49, 2)


@pytest.mark.slow
def test_own_inr_measurement_reports_every_saved_model(mnist_run):
    """`python -m tasks.inr_classify.own_inrs`: every saved model scored on refitted INRs
    and on the zoo's INRs of the same test images; the pixel model reads both."""
    from tasks.inr_classify.own_inrs import main

    assert main(["--run", str(mnist_run), "--n", "6", "--steps", "150", "--lr", "1e-3"]) == 0
    out = json.loads((mnist_run / "own_inrs_150x0.001.json").read_text())
    results = json.loads((mnist_run / "results.json").read_text())
    assert out["n"] == 6 and set(out["models"]) == set(results["models"])
    assert out["psnr_mean"] > 15
    pixels = out["models"]["recon_mlp"]
    assert pixels["reads"] == "pixels" and pixels["zoo_test_acc"] == results["models"]["recon_mlp"]["saved"]["test_acc"]
    assert pixels["own"] >= 2 / 6 and pixels["zoo_same_images"] >= 2 / 6
