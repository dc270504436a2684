"""Metanetworks round-trip through safetensors + JSON config; bad files give named errors."""
from __future__ import annotations

import pytest
import torch

from tasks.metanet_io import config_path, load_metanet, save_metanet, spec_from_config
from weightspace.errors import CheckpointError
from weightspace.nn import InvariantClassifier
from weightspace.testing import random_mlp_spec


def _build(config):
    return InvariantClassifier(spec_from_config(config), config["classes"], (4,), layer="unf")


def test_round_trip(tmp_path):
    spec = random_mlp_spec([2, 5, 1])
    torch.manual_seed(0)
    model = _build({"spec": spec.to_dict(), "classes": 3})
    path = save_metanet(tmp_path / "clf.safetensors", model, {"task": "t", "spec": spec.to_dict(), "classes": 3})
    assert config_path(path).is_file()
    loaded, config = load_metanet(path, {"t": _build})
    x = {k: torch.randn(2, 1, *e.shape) for k, e in spec.entries.items()}
    torch.testing.assert_close(loaded(x), model.eval()(x))
    assert config["classes"] == 3


def test_errors(tmp_path):
    spec = random_mlp_spec([2, 5, 1])
    model = _build({"spec": spec.to_dict(), "classes": 3})
    path = save_metanet(tmp_path / "clf.safetensors", model, {"task": "t", "spec": spec.to_dict(), "classes": 3})
    with pytest.raises(CheckpointError, match="unknown task"):
        load_metanet(path, {"other": _build})
    config_path(path).write_text("{not json")
    with pytest.raises(CheckpointError, match="invalid JSON"):
        load_metanet(path, {"t": _build})
    config_path(path).unlink()
    with pytest.raises(CheckpointError, match="no metanetwork config"):
        load_metanet(path, {"t": _build})
    with pytest.raises(ValueError, match="task"):
        save_metanet(tmp_path / "x.safetensors", model, {})
