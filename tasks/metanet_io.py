"""Trained metanetworks on disk, in the one format of `weightspace.io.save_module`: the
weights as safetensors, and in the same file's metadata the JSON config that rebuilds
the module (the task, the model name, the spec, what the task needs).

    save_metanet("clf.safetensors", model, {"task": "inr-classify", "model": "unf_ff", ...})
    model, config = load_metanet("clf.safetensors", builders)   # builders: task -> config -> module

Files of the earlier layout (the config in a JSON file beside the weights) are refused
with a CheckpointError that says so: re-run the job that wrote them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

from torch import nn

import weightspace as ws
from weightspace.errors import CheckpointError, ConfigError
from weightspace.io.module_file import CONFIG_KEY, load_module, save_module
from weightspace.io.safetensors_file import read_metadata


def save_metanet(path: str | Path, model: nn.Module, config: Mapping) -> Path:
    """Write the weights with the config in their metadata (one atomic safetensors file)."""
    if "task" not in config:
        raise ConfigError("a metanetwork config needs a 'task' entry naming how to rebuild it")
    return save_module(model, path, config)


def load_metanet(path: str | Path, builders: Mapping[str, Callable[[dict], nn.Module]]) -> tuple[nn.Module, dict]:
    """Rebuild the module from its config with `builders[config["task"]]`, load its weights (no pickle), eval mode."""
    path = Path(path)
    beside = path.with_name(path.name.removesuffix(".safetensors") + ".json")
    if path.is_file() and beside.is_file() and CONFIG_KEY not in read_metadata(path):
        raise CheckpointError(path, f"its config is in {beside.name} beside it, the layout before configs moved "
                                    "into the safetensors metadata; re-run the job that wrote it to save it anew")

    def build(config: dict) -> nn.Module:
        if not isinstance(config.get("task"), str):
            raise CheckpointError(path, "a metanetwork config must be a JSON object with a 'task' string")
        task = builders.get(config["task"])
        if task is None:
            raise CheckpointError(path, f"unknown task {config.get('task')!r}; known: {sorted(builders)}")
        return task(config)

    model, config = load_module(path, build)
    return model.eval(), config


def spec_config(spec: ws.WeightSpec) -> dict:
    """The spec as a JSON-ready dict for a config."""
    return spec.to_dict()


def spec_from_config(config: Mapping) -> ws.WeightSpec:
    return ws.WeightSpec.from_dict(config["spec"])


__all__ = ["load_metanet", "save_metanet", "spec_config", "spec_from_config"]
