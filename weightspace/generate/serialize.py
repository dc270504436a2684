"""Save and load a `CheckpointDiffusion`: safetensors weights, config and spec in the metadata.

The one format of every saved metanetwork (`weightspace.io.save_module`): the state
dict (denoiser weights and the fitted normalizer's statistics) as tensors, the
config (denoiser kind, sizes, timesteps and the spec's JSON) in the metadata. No
pickle is written or read.
"""
from __future__ import annotations

from pathlib import Path

from ..io.module_file import load_module, save_module
from .diffusion import CheckpointDiffusion

KIND_KEY = "weightspace.generate.kind"


def save_generator(path: str | Path, model: CheckpointDiffusion) -> Path:
    """Write `model` to `path` (a .safetensors file, atomically)."""
    return save_module(model, path, model.config(), {KIND_KEY: "CheckpointDiffusion"})


def load_generator(path: str | Path) -> CheckpointDiffusion:
    """Rebuild the model `save_generator` wrote (CheckpointError naming the file if it cannot)."""
    model = load_module(path, CheckpointDiffusion.from_config)[0]
    return model.eval()
