"""A trained module on disk: its weights as safetensors and, in the same file's metadata,
the JSON config that rebuilds it (as the spec travels inside safetensors metadata).

    save_module(model, "clf.safetensors", {"task": "inr-classify", "model": "unf_ff", ...})
    model, config = load_module("clf.safetensors", build)   # build: config -> untrained module

One file holds everything: nothing beside it can go missing or out of step.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Mapping

from torch import nn

from ..errors import CheckpointError, WeightspaceError
from .load import load
from .safetensors_file import read_metadata
from .save import save
from .validate import parse_json

CONFIG_KEY = "weightspace.config"


def save_module(module: nn.Module, path: str | Path, config: Mapping, metadata: Mapping[str, str] | None = None) -> Path:
    """Write `module`'s state dict to `path` (atomic safetensors) with `config` as JSON in its metadata."""
    meta = {**(metadata or {}), CONFIG_KEY: json.dumps(dict(config))}
    return save({k: v.detach().cpu() for k, v in module.state_dict().items()}, path, metadata=meta)


def load_module_config(path: str | Path) -> dict:
    """The config `save_module` stored in `path`; CheckpointError naming the file if it has none."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    meta = read_metadata(path)
    if CONFIG_KEY not in meta:
        raise CheckpointError(path, f"no module config in its metadata (key {CONFIG_KEY!r}); "
                                    "it was not written by weightspace.io.save_module")
    config = parse_json(meta[CONFIG_KEY], path, f"the module config under metadata key {CONFIG_KEY!r}")
    if not isinstance(config, dict):
        raise CheckpointError(path, f"the config under {CONFIG_KEY!r} is a {type(config).__name__}, not an object")
    return config


def load_module(path: str | Path, build: Callable[[dict], nn.Module]) -> tuple[nn.Module, dict]:
    """Rebuild the module with `build(config)` and load its weights (no pickle); (module, config).

    A config `build` cannot read, or weights that do not fit the rebuilt module, raise
    CheckpointError naming the file.
    """
    path = Path(path)
    config = load_module_config(path)
    try:
        module = build(config)
    except WeightspaceError as err:
        raise CheckpointError(path, f"invalid module config: {err}") from err
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise CheckpointError(path, f"malformed module config: {type(err).__name__}: {err}") from err
    try:
        module.load_state_dict(load(path))
    except RuntimeError as err:
        raise CheckpointError(path, f"weights do not fit the module its config rebuilds: {err}") from err
    return module, config
