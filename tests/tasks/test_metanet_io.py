"""Metanetworks round-trip through one safetensors file (config in its metadata); bad files give named errors."""
from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch

from tasks.metanet_io import load_metanet, save_metanet, spec_from_config
from weightspace.errors import CheckpointError, ConfigError
from weightspace.io.module_file import CONFIG_KEY, load_module_config
from weightspace.nn import InvariantClassifier
from weightspace.testing import random_mlp_spec


def _build(config):
    return InvariantClassifier(spec_from_config(config), config["classes"], (4,), layer="unf")


def _saved(tmp_path):
    spec = random_mlp_spec([2, 5, 1])
    torch.manual_seed(0)
    model = _build({"spec": spec.to_dict(), "classes": 3})
    path = save_metanet(tmp_path / "clf.safetensors", model, {"task": "t", "spec": spec.to_dict(), "classes": 3})
    return spec, model, path


def test_round_trip_keeps_everything_in_one_file(tmp_path):
    spec, model, path = _saved(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf.safetensors"]
    assert load_module_config(path)["classes"] == 3
    loaded, config = load_metanet(path, {"t": _build})
    x = {k: torch.randn(2, 1, *e.shape) for k, e in spec.entries.items()}
    torch.testing.assert_close(loaded(x), model.eval()(x))
    assert config["classes"] == 3 and not loaded.training


def _rewrite(path, config_text: str | None):
    tensors = safetensors.torch.load_file(str(path))
    safetensors.torch.save_file(tensors, str(path), metadata=None if config_text is None else {CONFIG_KEY: config_text})


def test_errors_name_the_file(tmp_path):
    _, model, path = _saved(tmp_path)
    with pytest.raises(CheckpointError, match="clf.safetensors: unknown task"):
        load_metanet(path, {"other": _build})
    with pytest.raises(CheckpointError, match="malformed module config: KeyError"):
        load_metanet(path, {"t": lambda config: _build({**config, "classes": config["missing"]})})
    _rewrite(path, "{not json")
    with pytest.raises(CheckpointError, match="clf.safetensors: the module config .* is invalid JSON"):
        load_metanet(path, {"t": _build})
    _rewrite(path, None)
    with pytest.raises(CheckpointError, match="clf.safetensors: no module config"):
        load_metanet(path, {"t": _build})
    with pytest.raises(ConfigError, match="task"):
        save_metanet(tmp_path / "x.safetensors", model, {})


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    spec, _, path = _saved(tmp_path)
    config = load_module_config(path)
    _rewrite(path, json.dumps({**config, "classes": 4}))
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_metanet(path, {"t": _build})


def test_the_earlier_layout_with_a_json_beside_is_refused_clearly(tmp_path):
    _, _, path = _saved(tmp_path)
    config = load_module_config(path)
    _rewrite(path, None)
    (tmp_path / "clf.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="clf.json beside it.*re-run the job"):
        load_metanet(path, {"t": _build})
