"""Hostile metanetwork configs and `edit --out` over its input: named errors naming the file."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from tasks.inr_classify.data import InrContext
from tasks.inr_edit.cli import edit_checkpoint
from tasks.metanet_io import config_path, load_metanet
from weightspace.errors import CheckpointError, OutputIsInputError
from weightspace.io import save


def _weights(tmp_path):
    path = tmp_path / "clf.safetensors"
    save({"w": torch.zeros(2)}, path)
    return path


@pytest.mark.parametrize(
    "config, needle",
    [
        ({"task": "t", "standardize": {}, "num_classes": 1e9}, "num_classes"),
        ({"task": "t", "standardize": {}, "num_classes": 10**9}, "num_classes"),
        ({"task": "t"}, "malformed"),
        ({"task": ["t"]}, "'task' string"),
        ([1, 2], "'task' string"),
    ],
)
def test_hostile_metanetwork_config_is_a_named_error(tmp_path, config, needle):
    path = _weights(tmp_path)
    config_path(path).write_text(json.dumps(config))
    before = config_path(path).read_bytes()
    with pytest.raises(CheckpointError, match=needle) as info:
        load_metanet(path, {"t": InrContext.from_config})
    assert str(config_path(path)) in str(info.value)
    assert config_path(path).read_bytes() == before


def test_deep_or_binary_config_is_a_named_error(tmp_path):
    path = _weights(tmp_path)
    for raw, needle in ((b"[" * 100_000 + b"]" * 100_000, "nests deeper"), (b'{"task": "\xff"}', "UTF-8")):
        config_path(path).write_bytes(raw)
        with pytest.raises(CheckpointError, match=needle):
            load_metanet(path, {"t": InrContext.from_config})


def test_edit_refuses_out_equal_to_its_input(tmp_path):
    path = _weights(tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for out in (path, tmp_path / "." / path.name):
        with pytest.raises(OutputIsInputError, match="destroy the input"):
            edit_checkpoint(tmp_path / "editor.safetensors", path, out)
    save({"w": torch.ones(2)}, tmp_path / "other.safetensors")
    with pytest.raises(OutputIsInputError):
        edit_checkpoint(path, tmp_path / "other.safetensors", path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
