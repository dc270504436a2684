"""Turn whatever a training script saved into a flat `{key: tensor}` state dict.

Checkpoints wrap the weights in many ways: `{"state_dict": ...}` (Lightning),
`{"model": ..., "optimizer": ..., "epoch": ...}`, nested dicts of submodules, and
key prefixes left by DataParallel/DDP (`module.`) or torch.compile (`_orig_mod.`).
Everyone downstream wants the plain dict a fresh `model.state_dict()` would give.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import CheckpointError

# Keys under which checkpoints keep the model's weights, in order of preference.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module", "net", "params")
# Averaged weights: used only when no key above holds tensors.
EMA_KEYS = ("ema", "model_ema", "state_dict_ema", "ema_state_dict")
# Training state that may hold tensors but is never part of the model.
TRAINING_STATE_KEYS = frozenset(
    {"optimizer", "optimizer_states", "optimizer_state_dict", "optim", "scheduler", "lr_scheduler",
     "lr_schedulers", "scaler", "grad_scaler", "callbacks", "loops", "rng_state"}
)
# Prefixes that wrappers add to every key; stripped only when every key has one.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_MAX_UNWRAP = 4


def _holds_tensors(value: Any) -> bool:
    """Whether a (possibly nested) mapping has at least one tensor leaf."""
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, Mapping):
        return any(_holds_tensors(v) for k, v in value.items() if isinstance(k, str))
    return False


def _unwrap_once(obj: Mapping) -> Mapping | None:
    """The wrapped mapping to descend into, or None when `obj` is already the weights."""
    if any(isinstance(v, torch.Tensor) for v in obj.values()):
        return None
    for keys in (WRAPPER_KEYS, EMA_KEYS):
        for key in keys:
            value = obj.get(key)
            if isinstance(value, Mapping) and _holds_tensors(value):
                return value
    return None


def _flatten(obj: Mapping, prefix: str, out: dict[str, torch.Tensor], top: bool) -> None:
    """Flatten nested mappings with '.', keeping only tensor leaves under string keys."""
    for key, value in obj.items():
        if not isinstance(key, str) or (top and key in TRAINING_STATE_KEYS):
            continue
        if isinstance(value, torch.Tensor):
            out[prefix + key] = value
        elif isinstance(value, Mapping):
            _flatten(value, f"{prefix}{key}.", out, top=False)


def strip_wrapper_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove `module.` / `_orig_mod.` (in any nesting) while every key carries one."""
    changed = True
    while changed and state_dict:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) and len(k) > len(prefix) for k in state_dict):
                state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
                changed = True
    return state_dict


def unwrap(obj: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """The flat state dict inside a loaded checkpoint object.

    Non-tensor leaves (epoch counters, hyper-parameters) and top-level training state
    (optimizer, scheduler) are dropped. Raises CheckpointError naming `path` and the
    top-level keys when no tensor is found, rather than returning an empty dict.
    """
    if isinstance(obj, torch.nn.Module):
        raise CheckpointError(path, "holds a whole nn.Module, not a state dict; save model.state_dict()")
    if not isinstance(obj, Mapping):
        found = type(obj).__name__
        raise CheckpointError(path, f"expected a state dict (a mapping of tensors), found {found}")
    top_keys = [str(k) for k in obj]
    for _ in range(_MAX_UNWRAP):
        inner = _unwrap_once(obj)
        if inner is None:
            break
        obj = inner
    out: dict[str, torch.Tensor] = {}
    _flatten(obj, "", out, top=True)
    if not out:
        shown = top_keys[:20] + (["…"] if len(top_keys) > 20 else [])
        raise CheckpointError(path, f"no tensors found; top-level keys: {shown}")
    return strip_wrapper_prefixes(out)
