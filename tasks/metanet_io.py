"""Trained metanetworks on disk: weights as safetensors, beside them a JSON config
that rebuilds the module (the task, the model name, the spec, what the task needs).

    save_metanet("clf.safetensors", model, {"task": "inr-classify", "model": "unf_ff", ...})
    model, config = load_metanet("clf.safetensors", builders)   # builders: task -> config -> module
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

from torch import nn

import weightspace as ws
from weightspace.errors import CheckpointError, WeightspaceError
from weightspace.io.save import write_json
from weightspace.io.validate import read_json


def config_path(path: str | Path) -> Path:
    """The JSON config beside a metanetwork's weights."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".safetensors") + ".json")


def save_metanet(path: str | Path, model: nn.Module, config: Mapping) -> Path:
    """Write the weights (atomic safetensors) and then the config (atomic JSON)."""
    if "task" not in config:
        raise ValueError("a metanetwork config needs a 'task' entry naming how to rebuild it")
    path = ws.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    write_json(config_path(path), dict(config))
    return path


def load_metanet(path: str | Path, builders: Mapping[str, Callable[[dict], nn.Module]]) -> tuple[nn.Module, dict]:
    """Rebuild the module from its config, load its weights (no pickle), eval mode."""
    cfg_file = config_path(path)
    if not cfg_file.is_file():
        raise CheckpointError(Path(path), f"no metanetwork config {cfg_file.name} beside it")
    config = read_json(cfg_file, "metanetwork config")
    if not isinstance(config, dict) or not isinstance(config.get("task"), str):
        raise CheckpointError(cfg_file, "a metanetwork config must be a JSON object with a 'task' string")
    build = builders.get(config["task"])
    if build is None:
        raise CheckpointError(cfg_file, f"unknown task {config.get('task')!r}; known: {sorted(builders)}")
    try:
        model = build(config)
    except WeightspaceError as err:
        raise CheckpointError(cfg_file, f"invalid metanetwork config: {err}") from err
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise CheckpointError(cfg_file, f"malformed metanetwork config: {type(err).__name__}: {err}") from err
    state = ws.load(path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(Path(path), f"weights do not fit the rebuilt model: missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}")
    return model.eval(), config


def spec_config(spec: ws.WeightSpec) -> dict:
    """The spec as a JSON-ready dict for a config."""
    return spec.to_dict()


def spec_from_config(config: Mapping) -> ws.WeightSpec:
    return ws.WeightSpec.from_dict(config["spec"])


__all__ = ["config_path", "load_metanet", "save_metanet", "spec_config", "spec_from_config"]
