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
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "model_state", "module", "net", "params")
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
# Bounds on the walk through nested mappings: a hostile pickle can make one dict contain
# itself, or share sub-dicts so that a 2 KB file names 2**40 keys.
MAX_DEPTH = 64
MAX_ITEMS = 1_000_000
MAX_MAPPINGS = 100_000


def _holds_tensors(value: Any, path: str | Path) -> bool:
    """Whether a (possibly nested, possibly cyclic) mapping has at least one tensor leaf."""
    if isinstance(value, torch.Tensor):
        return True
    if not isinstance(value, Mapping):
        return False
    seen, stack, items = {id(value)}, [value], 0
    while stack:
        for k, v in stack.pop().items():
            items += 1
            if items > MAX_ITEMS:
                raise CheckpointError(path, f"nested mappings hold more than {MAX_ITEMS:,} entries; refused")
            if not isinstance(k, str):
                continue
            if isinstance(v, torch.Tensor):
                return True
            if isinstance(v, Mapping) and id(v) not in seen:
                seen.add(id(v))
                stack.append(v)
    return False


def _unwrap_once(obj: Mapping, path: str | Path) -> Mapping | None:
    """The wrapped mapping to descend into, or None when `obj` is already the weights."""
    if any(isinstance(v, torch.Tensor) for v in obj.values()):
        return None
    for keys in (WRAPPER_KEYS, EMA_KEYS):
        for key in keys:
            value = obj.get(key)
            if isinstance(value, Mapping) and _holds_tensors(value, path):
                return value
    return None


def _flatten(obj: Mapping, path: str | Path) -> dict[str, torch.Tensor]:
    """Flatten nested mappings with '.', keeping only tensor leaves under string keys.

    Iterative and bounded: a mapping that contains itself, nesting deeper than
    MAX_DEPTH, or more than MAX_ITEMS entries or MAX_MAPPINGS mappings visited
    (shared sub-dicts expanding exponentially) raise CheckpointError naming `path`.
    """
    out: dict[str, torch.Tensor] = {}
    stack = [(iter(obj.items()), "", id(obj))]
    on_path, items, mappings = {id(obj)}, 0, 0
    while stack:
        entries, prefix, oid = stack[-1]
        item = next(entries, None)
        if item is None:
            stack.pop()
            on_path.discard(oid)
            continue
        items += 1
        if items > MAX_ITEMS:
            raise CheckpointError(path, f"nested mappings expand to more than {MAX_ITEMS:,} entries; refused")
        key, value = item
        if not isinstance(key, str) or (len(stack) == 1 and key in TRAINING_STATE_KEYS):
            continue
        if isinstance(value, torch.Tensor):
            out[prefix + key] = value
        elif isinstance(value, Mapping):
            if id(value) in on_path:
                raise CheckpointError(path, f"mapping {prefix + key!r} contains itself (a cycle); refused")
            if len(stack) >= MAX_DEPTH:
                raise CheckpointError(path, f"mappings nest deeper than {MAX_DEPTH} levels; refused")
            mappings += 1
            if mappings > MAX_MAPPINGS:
                raise CheckpointError(path, f"nested mappings expand to more than {MAX_MAPPINGS:,} mappings; refused")
            stack.append((iter(value.items()), f"{prefix}{key}.", id(value)))
            on_path.add(id(value))
    return out


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
        inner = _unwrap_once(obj, path)
        if inner is None:
            break
        obj = inner
    out = _flatten(obj, path)
    if not out:
        shown = top_keys[:20] + (["…"] if len(top_keys) > 20 else [])
        raise CheckpointError(path, f"no tensors found; top-level keys: {shown}")
    return strip_wrapper_prefixes(out)
