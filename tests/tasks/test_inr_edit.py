"""INR editing: the image edits match scipy, every equivariant editor commutes with the
SIREN's permutations (and the flat MLP does not), a permuted INR renders to the same
edited image, a tiny run beats the no-edit baseline, and `weightspace edit` round-trips."""
from __future__ import annotations

import argparse
import json

import pytest
import torch
from scipy import ndimage

import weightspace as ws
from tasks.inr_classify.data import Standardize, grid_coords
from tasks.cli import add_parser as add_run
from tasks.inr_edit import cli
from tasks.inr_edit.data import EditContext, EditPairs, apply_edit, blur, contrast, dilate
from tasks.inr_edit.models import EDITORS, build_editor
from tasks.inr_edit.train import EditConfig, edit_mse, fit_editor
from tasks.training import WeightData
from weightspace.errors import EditError
from weightspace.nn import metanet_spec
from weightspace.testing import assert_equivariant, assert_negative_control, random_weights
from zoo import SirenConfig
from zoo.inr_zoo import InrRecipe, build_inr_zoo, siren_spec

EQUIVARIANT = [n for n in EDITORS if n not in ("identity", "flat_mlp")]


@pytest.fixture(scope="module")
def small_context() -> EditContext:
    cfg = SirenConfig((2, 6, 5, 1))
    spec = metanet_spec(siren_spec(cfg, grid_coords((8, 8))))
    w = random_weights(spec, torch.Generator().manual_seed(0), (8,))
    return EditContext(spec, cfg, (8, 8), "dilate", Standardize.fit(WeightData(w, torch.zeros(8))))


def _editor(name: str, context: EditContext, seed: int = 0):
    torch.manual_seed(seed)
    editor = build_editor(name, context).double()
    if editor.scale is not None:
        with torch.no_grad():
            editor.scale.uniform_(0.5, 1.5)  # past the small init, so updates are large
    return editor


def test_edits_match_scipy():
    images = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    want = torch.from_numpy(ndimage.grey_dilation(images.numpy(), size=(1, 3, 3)))
    torch.testing.assert_close(dilate(images), want)
    want = torch.from_numpy(ndimage.gaussian_filter(images.numpy(), sigma=(0, 1.0, 1.0), truncate=2.0, mode="mirror"))
    torch.testing.assert_close(blur(images), want)
    curves = images[:, 0]
    torch.testing.assert_close(dilate(curves), torch.from_numpy(ndimage.grey_dilation(curves.numpy(), size=(1, 3))))
    stretched = contrast(images * 0.3)
    torch.testing.assert_close(stretched.mean((1, 2)), (images * 0.3).mean((1, 2)))  # no clipping at gain 2 here
    assert stretched.std() > (images * 0.3).std() * 1.9
    assert contrast(images).abs().max() <= 1.0
    with pytest.raises(EditError, match="unknown edit"):
        apply_edit("sharpen", images)


@pytest.mark.parametrize("name", EQUIVARIANT)
def test_editor_update_is_equivariant(name, small_context):
    editor = _editor(name, small_context)
    assert_equivariant(editor.update, small_context.spec, n_trials=2)
    assert assert_negative_control(editor.update, small_context.spec, small_context.spec) > 1e-6


def test_flat_mlp_editor_is_not_equivariant(small_context):
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(_editor("flat_mlp", small_context).update, small_context.spec, n_trials=1)


@pytest.mark.parametrize("name", ["nfn_hnp_ff", "gmn"])
def test_permuted_inr_renders_the_same_edit(name, small_context):
    spec, editor = small_context.spec, _editor(name, small_context)
    gen = torch.Generator().manual_seed(3)
    w = {k: v * 0.3 for k, v in random_weights(spec, gen, (4,), dtype=torch.float64).items()}
    g = spec.random_element(gen, batch_shape=(4,))
    moved = spec.apply(w, g, batch_dims=1)
    assert not torch.allclose(moved["2.weight"], w["2.weight"])
    with torch.no_grad():
        torch.testing.assert_close(small_context.render(moved), small_context.render(w))
        same = small_context.render(editor(moved))
        ref = small_context.render(editor(w))
    torch.testing.assert_close(same, ref)
    assert (ref - small_context.render(w)).abs().max() > 1e-3  # the editor did change the INR


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    out = tmp_path_factory.mktemp("inr_edit") / "zoo"
    build_inr_zoo(out, "digits", InrRecipe(steps=60), chunk=200, limit=160, progress=False)
    return out


def test_pairs_targets_are_the_edited_images(tiny_zoo):
    pairs = EditPairs.load(tiny_zoo, "dilate", source="render")
    test = pairs.splits["test"]
    render = pairs.context.render(test.weights)
    torch.testing.assert_close(test.targets, dilate(render.reshape(-1, 8, 8)).reshape(len(test), -1))
    signal = EditPairs.load(tiny_zoo, "blur", limit=5)
    assert all(len(s) == 5 for s in signal.splits.values())
    with pytest.raises(EditError, match="source"):
        EditPairs.load(tiny_zoo, "dilate", source="pixels")


def test_tiny_editor_beats_no_edit(tiny_zoo):
    pairs = EditPairs.load(tiny_zoo, "dilate")
    s = pairs.splits
    identity = edit_mse(build_editor("identity", pairs.context), s["test"])
    torch.manual_seed(0)
    editor = build_editor("nfn_hnp_ff", pairs.context)
    result = fit_editor(editor, s["train"], s["val"], EditConfig(epochs=8, batch_size=32, lr=3e-3, progress=False),
                        test=s["test"])
    assert result.best_epoch >= 0 and result.curves["val"][result.best_epoch] == result.best_val
    assert result.test < 0.9 * identity


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli.add_parser(sub)
    add_run(sub)
    args = parser.parse_args(argv)
    return args.run(args)


def test_run_and_edit_round_trip(tiny_zoo, tmp_path):
    out = tmp_path / "run"
    assert _cli(["run", "inr-edit", "--zoo", str(tiny_zoo), "--models", "identity", "unf_ff", "--seeds", "0",
                 "--epochs", "3", "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["models"]) == {"identity", "unf_ff"} and results["edit"] == "dilate"
    assert results["models"]["unf_ff"]["test_mse_mean"] < results["models"]["identity"]["test_mse_mean"]
    assert (out / "examples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metanet = out / "models" / "unf_ff.safetensors"

    pairs = EditPairs.load(tiny_zoo, "dilate", limit=2)
    one = {k: v[0].clone() for k, v in pairs.splits["test"].weights.items()}
    src = ws.save(one, tmp_path / "in.safetensors", spec=pairs.spec)
    edited, png = tmp_path / "out.safetensors", tmp_path / "before_after.png"
    assert _cli(["edit", "--metanet", str(metanet), str(src), "--out", str(edited), "--png", str(png)]) == 0
    got = ws.load(edited)
    assert ws.load_spec(edited) is not None and set(got) == set(one)
    from tasks.metanet_io import load_metanet
    from tasks.inr_edit.models import editor_from_config

    editor, _ = load_metanet(metanet, {"inr-edit": editor_from_config})
    with torch.no_grad():
        want = editor({k: v.unsqueeze(0) for k, v in one.items()})
    for k in one:
        torch.testing.assert_close(got[k], want[k][0])
    assert not torch.equal(got["2.weight"], one["2.weight"])
    assert pairs.context.render({k: v.unsqueeze(0) for k, v in got.items()}).isfinite().all()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    stacked = ws.save(pairs.splits["test"].weights, tmp_path / "two.safetensors")
    assert _cli(["edit", "--metanet", str(metanet), str(stacked), "--out", str(tmp_path / "two_out.safetensors")]) == 0
    assert ws.load(tmp_path / "two_out.safetensors")["0.weight"].shape[0] == 2
    bad = ws.save({"0.weight": torch.zeros(3, 2)}, tmp_path / "bad.safetensors")
    with pytest.raises(ws.WeightspaceError):
        cli.edit_checkpoint(metanet, bad, tmp_path / "never.safetensors")
    assert not (tmp_path / "never.safetensors").exists()
