"""Hostile metanetwork configs and `edit --out` over its input: named errors naming the file."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from tasks.inr_classify.data import InrContext
from tasks.inr_edit.cli import edit_checkpoint
from tasks.metanet_io import load_metanet
from weightspace.errors import CheckpointError, OutputIsInputError
from weightspace.io import save
from weightspace.io.module_file import CONFIG_KEY


def _weights(tmp_path, config_text: str | None = None):
    path = tmp_path / "clf.safetensors"
    save({"w": torch.zeros(2)}, path, metadata=None if config_text is None else {CONFIG_KEY: config_text})
    return path


@pytest.mark.parametrize(
    "config, needle",
    [
        ({"task": "t", "standardize": {}, "num_classes": 1e9}, "num_classes"),
        ({"task": "t", "standardize": {}, "num_classes": 10**9}, "num_classes"),
        ({"task": "t"}, "malformed"),
        ({"task": ["t"]}, "'task' string"),
        ([1, 2], "not an object"),
    ],
)
def test_hostile_metanetwork_config_is_a_named_error(tmp_path, config, needle):
    path = _weights(tmp_path, json.dumps(config))
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=needle) as info:
        load_metanet(path, {"t": InrContext.from_config})
    assert str(path) in str(info.value)
    assert path.read_bytes() == before


def test_deep_or_invalid_config_is_a_named_error(tmp_path):
    for raw, needle in (("[" * 100_000 + "]" * 100_000, "nests deeper"), ('{"task": ', "invalid JSON")):
        path = _weights(tmp_path, raw)
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
