"""Streaming merges equal in-memory ones bit for bit, shard and alias layout included."""
from __future__ import annotations

import json

import pytest
import torch

import weightspace as ws
from weightspace.errors import ConfigError, KeyMismatchError, OutputIsInputError, ShapeMismatchError
from weightspace.merge import merge_files, merge_models
from weightspace.merge.lazy import LazyCheckpoint

from tests.align.models import noisy, parsed, state

CASES = [
    ("linear", {"weights": [1.0, 2.0, 0.5]}, False),
    ("slerp", {"t": 0.4}, False),
    ("task_arithmetic", {"scale": 0.7}, True),
    ("ties", {"density": 0.3}, True),
    ("dare", {"p": 0.6, "seed": 5, "combine": "ties"}, True),
    ("model_stock", {}, True),
]


def _models(n: int, name: str = "cnn_bn"):
    model, _, spec = parsed(name)
    base = state(model)
    return spec, base, [noisy(base, 0.2, seed=i) for i in range(n)]


def _equal(a, b) -> bool:
    return set(a) == set(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method, options, uses_base", CASES)
def test_streaming_equals_in_memory_bit_for_bit(tmp_path, method, options, uses_base):
    n = 2 if method == "slerp" else 3
    spec, base, models = _models(n)
    paths = [ws.save(sd, tmp_path / f"m{i}.safetensors") for i, sd in enumerate(models)]
    base_path = ws.save(base, tmp_path / "base.safetensors") if uses_base else None
    options = dict(options)
    if method == "linear":
        options["weights"] = options["weights"][:n]
    report = merge_files(paths, tmp_path / "out", method, base=base_path, max_shard_bytes=1500, **options)
    assert len(report.files) > 2  # several shards and the index
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(base)
    loaded = [ws.load(p) for p in paths]
    want = merge_models(loaded, method, base=ws.load(base_path) if uses_base else None, **options).state_dict
    assert _equal(ws.load(tmp_path / "out"), want)
    assert report.peak_merge_bytes <= 1500 + (n + 1) * report.largest_entry_bytes + report.largest_entry_bytes


def test_streaming_with_weight_alignment_equals_in_memory(tmp_path):
    spec, base, _ = _models(0, "mlp")
    gen = torch.Generator().manual_seed(1)
    models = [base] + [noisy(spec.apply(base, spec.random_element(gen)), 0.05, seed=i) for i in range(2)]
    paths = [ws.save(sd, tmp_path / f"m{i}.safetensors") for i, sd in enumerate(models)]
    report = merge_files(paths, tmp_path / "merged.safetensors", "linear", spec=spec, align="weight",
                         generator=torch.Generator().manual_seed(0))
    want = merge_models([ws.load(p) for p in paths], "linear", spec=spec, align="weight",
                        generator=torch.Generator().manual_seed(0))
    assert _equal(ws.load(tmp_path / "merged.safetensors"), want.state_dict)
    assert ws.load_spec(tmp_path / "merged.safetensors") == spec
    assert report.peak_align_bytes == 2 * report.model_bytes
    for g, h in zip(report.elements, want.elements):
        assert all(torch.equal(g.perms[k], h.perms[k]) for k in spec.groups)


def test_tied_weights_stay_tied_and_hf_sharded_folders_round_trip(tmp_path):
    pytest.importorskip("transformers")
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=16, vocab_size=50)
    folders = []
    for seed in range(2):
        torch.manual_seed(seed)
        folder = tmp_path / f"gpt{seed}"
        GPT2LMHeadModel(config).save_pretrained(folder, max_shard_size="20KB")
        folders.append(folder)
    assert (folders[0] / "model.safetensors.index.json").exists()
    report = merge_files(folders, tmp_path / "merged", "slerp", t=0.5, max_shard_bytes=30_000)
    assert (tmp_path / "merged" / "config.json").exists()
    want = merge_models([ws.load(f) for f in folders], "slerp", t=0.5).state_dict
    assert _equal(ws.load(tmp_path / "merged"), want)
    assert report.peak_merge_bytes < report.model_bytes
    tied = {"a": torch.ones(3), "c": torch.zeros(2)}
    tied["b"] = tied["a"]
    paths = [ws.save(tied, tmp_path / f"t{i}.safetensors") for i in range(2)]
    assert LazyCheckpoint(paths[0]).alias_of("b") == "a"
    merge_files(paths, tmp_path / "tied.safetensors", "linear")
    out = ws.load(tmp_path / "tied.safetensors")
    assert out["a"] is out["b"]


def test_bad_outputs_and_models_that_do_not_fit_are_refused(tmp_path):
    a = ws.save({"w": torch.ones(2, 2)}, tmp_path / "a.safetensors")
    b = ws.save({"w": torch.ones(2, 3)}, tmp_path / "b.safetensors")
    c = ws.save({"v": torch.ones(2, 2)}, tmp_path / "c.safetensors")
    with pytest.raises(OutputIsInputError):
        merge_files([a, a], a, "linear")
    with pytest.raises(ShapeMismatchError):
        merge_files([a, b], tmp_path / "o.safetensors", "linear")
    with pytest.raises(KeyMismatchError):
        merge_files([a, c], tmp_path / "o.safetensors", "linear")
    with pytest.raises(ConfigError, match="needs the models' spec"):
        merge_files([a, a], tmp_path / "o.safetensors", "linear", align="weight")
    with pytest.raises(ConfigError, match="'weight' or 'none'"):
        merge_files([a, a], tmp_path / "o.safetensors", "linear", align="ste")
    stale = tmp_path / "stale"
    ws.save({"w": torch.ones(2, 2)}, stale / "old.safetensors")
    with pytest.raises(ConfigError, match="already holds other weights"):
        merge_files([a, a], stale, "linear")
    assert not (tmp_path / "o.safetensors").exists()
