"""Every supported checkpoint layout loads back to the same flat state dict."""
from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch
from safetensors import safe_open

import weightspace as ws
from weightspace.io import load, load_spec, save
from weightspace.spec import Entry, Factor, Group, WeightSpec


def mlp_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "0.weight": torch.randn(4, 3, generator=g),
        "0.bias": torch.randn(4, generator=g),
        "1.weight": torch.randn(2, 4, generator=g),
        "1.bias": torch.randn(2, generator=g),
    }


def mlp_spec() -> WeightSpec:
    h = Factor("h", 4)
    entries = {
        "0.weight": Entry("0.weight", (4, 3), ((h,), (Factor(None, 3),))),
        "0.bias": Entry("0.bias", (4,), ((h,),)),
        "1.weight": Entry("1.weight", (2, 4), ((Factor(None, 2),), (h,))),
        "1.bias": Entry("1.bias", (2,), ((Factor(None, 2),),)),
    }
    return WeightSpec(entries, {"h": Group("h", 4, "neuron")})


def assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, t in want.items():
        assert got[key].dtype == t.dtype, key
        assert torch.equal(got[key], t), key


def test_safetensors_with_spec_round_trip(tmp_path):
    sd, spec = mlp_state_dict(), mlp_spec()
    path = save(sd, tmp_path / "m.safetensors", spec=spec, metadata={"author": "test"})
    assert_same(load(path), sd)
    assert load_spec(path) == spec
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["author"] == "test"


def test_top_level_lazy_exports(tmp_path):
    sd = mlp_state_dict()
    path = ws.save(sd, tmp_path / "m.safetensors")
    assert_same(ws.load(path), sd)
    assert ws.load_spec(path) is None


def test_dtypes_and_non_contiguous_tensors(tmp_path):
    sd = {"t": torch.randn(3, 5).t(), "h": torch.randn(4).bfloat16(), "i": torch.arange(6)}
    path = save(sd, tmp_path / "m.safetensors")
    assert_same(load(path), sd)


def test_sharded_safetensors_index_and_its_folder(tmp_path):
    sd = mlp_state_dict()
    shards = {"model-00001-of-00002.safetensors": ["0.weight", "0.bias"],
              "model-00002-of-00002.safetensors": ["1.weight", "1.bias"]}
    weight_map = {}
    for name, keys in shards.items():
        safetensors.torch.save_file({k: sd[k] for k in keys}, str(tmp_path / name))
        weight_map.update({k: name for k in keys})
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    assert_same(load(index), sd)
    (tmp_path / "config.json").write_text("{}")
    assert_same(load(tmp_path), sd)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("mmap", [True, False])
def test_torch_pickle(tmp_path, zip_format, mmap):
    sd = mlp_state_dict()
    path = tmp_path / "m.pt"
    torch.save(sd, path, _use_new_zipfile_serialization=zip_format)
    assert_same(load(path, mmap=mmap), sd)


def test_hf_folder_with_bin_and_bin_index(tmp_path):
    sd = mlp_state_dict()
    (tmp_path / "config.json").write_text("{}")
    torch.save(sd, tmp_path / "pytorch_model.bin")
    assert_same(load(tmp_path), sd)

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    torch.save({k: sd[k] for k in ("0.weight", "0.bias")}, sharded / "pytorch_model-00001-of-00002.bin")
    torch.save({k: sd[k] for k in ("1.weight", "1.bias")}, sharded / "pytorch_model-00002-of-00002.bin")
    weight_map = {k: f"pytorch_model-0000{1 if k.startswith('0.') else 2}-of-00002.bin" for k in sd}
    (sharded / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert_same(load(sharded), sd)


def test_folder_prefers_safetensors_over_bin(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    torch.save(mlp_state_dict(seed=1), tmp_path / "pytorch_model.bin")
    save(mlp_state_dict(seed=2), tmp_path / "model.safetensors")
    assert_same(load(tmp_path), mlp_state_dict(seed=2))


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"state_dict": sd, "epoch": 3, "global_step": 10, "optimizer_states": [{"lr": 0.1}]},
        lambda sd: {"model": sd, "optimizer": {"state": {0: {"exp_avg": torch.ones(2)}}}, "epoch": 1},
        lambda sd: {"model_state_dict": sd, "loss": 0.5},
        lambda sd: {"model_state": sd, "optimizer_state": {"lr": 0.1}, "epoch": 2},
        lambda sd: {"module": sd},
        lambda sd: {"net": sd, "args": {"lr": 0.1}},
        lambda sd: {"params": sd},
        lambda sd: {"model": sd, "ema": {k: v + 1 for k, v in sd.items()}},
        lambda sd: {"ema": sd, "epoch": 7},
    ],
    ids=["lightning", "model+optimizer", "model_state_dict", "model_state", "module", "net", "params", "model-over-ema", "ema"],
)
def test_wrappers_are_unwrapped(tmp_path, wrap):
    sd = mlp_state_dict()
    torch.save(wrap(sd), tmp_path / "c.ckpt")
    assert_same(load(tmp_path / "c.ckpt"), sd)


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod.", "_orig_mod.module."])
def test_wrapper_prefixes_stripped(tmp_path, prefix):
    sd = mlp_state_dict()
    torch.save({prefix + k: v for k, v in sd.items()}, tmp_path / "c.pth")
    assert_same(load(tmp_path / "c.pth"), sd)


def test_prefix_kept_unless_every_key_has_it(tmp_path):
    sd = {"module.weight": torch.ones(2), "head.weight": torch.zeros(2)}
    torch.save(sd, tmp_path / "c.pt")
    assert_same(load(tmp_path / "c.pt"), sd)


def test_lightning_nested_dicts_flatten(tmp_path):
    sd = mlp_state_dict()
    nested = {"state_dict": {"0": {"weight": sd["0.weight"], "bias": sd["0.bias"]},
                             "1": {"weight": sd["1.weight"], "bias": sd["1.bias"]}},
              "hyper_parameters": {"width": 4}, "epoch": 2}
    torch.save(nested, tmp_path / "c.ckpt")
    assert_same(load(tmp_path / "c.ckpt"), sd)


def test_tied_weights_saved_once_and_restored(tmp_path):
    emb = torch.randn(5, 3)
    sd = {"embed.weight": emb, "body.weight": torch.randn(3, 3), "head.weight": emb}
    path = save(sd, tmp_path / "tied.safetensors")
    with safe_open(str(path), framework="pt") as f:
        assert sorted(f.keys()) == ["body.weight", "embed.weight"]
        assert json.loads(f.metadata()["weightspace.aliases"]) == {"head.weight": "embed.weight"}
    got = load(path)
    assert set(got) == set(sd)
    assert got["head.weight"] is got["embed.weight"]
    assert torch.equal(got["head.weight"], emb)


def test_views_of_one_storage_are_copied_not_aliased(tmp_path):
    fused = torch.randn(6, 2)
    sd = {"q": fused[:3], "k": fused[3:], "all": fused}
    got = load(save(sd, tmp_path / "fused.safetensors"))
    assert_same(got, sd)
    assert got["q"] is not got["k"]


def test_tied_weights_in_a_pickle_keep_sharing(tmp_path):
    w = torch.randn(3, 3)
    torch.save({"a": w, "b": w}, tmp_path / "t.pt")
    got = load(tmp_path / "t.pt")
    assert got["a"].data_ptr() == got["b"].data_ptr()
