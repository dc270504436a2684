"""Save and load a learned rule's meta-parameters as safetensors.

The weights are the rule's `state_dict()`; its `config()` (meta-network kind and
sizes, feature settings, nominal term, and for UNF meta-networks the spec they
were built over) travels as JSON in the file's metadata, so `load_rule` rebuilds
the rule without any other file. Writing is atomic (`weightspace.io.save`).
"""
from __future__ import annotations

import json
from pathlib import Path

import safetensors

from ..errors import CheckpointError
from ..io import save
from ..spec import WeightSpec
from .features import FeatureConfig
from .rule import LearnedRule, make_net

RULE_KEY = "weightspace.lopt.rule"


def save_rule(rule: LearnedRule, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the rule's meta-parameters and config to `path` (a .safetensors file)."""
    meta = {**(metadata or {}), RULE_KEY: json.dumps(rule.config())}
    state = {k: v.detach().clone() for k, v in rule.state_dict().items()}
    return save(state, path, metadata=meta)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as err:
        raise CheckpointError(path, f"not a readable safetensors file ({err})") from err


def rule_from_config(config: dict) -> LearnedRule:
    """An untrained rule with the architecture `config` (from `LearnedRule.config`) describes."""
    net_cfg = dict(config["net"])
    kind = net_cfg.pop("kind")
    spec_json = net_cfg.pop("spec", None)
    spec = WeightSpec.from_json(spec_json) if spec_json is not None else None
    features = FeatureConfig.from_dict(config["features"])
    in_channels = net_cfg.pop("in_channels")
    net = make_net(kind, in_channels, spec, **net_cfg)
    return LearnedRule(net, features, nominal=config["nominal"], nominal_decay=config["nominal_decay"],
                       bound=config.get("bound", "none"))


def load_rule(path: str | Path) -> LearnedRule:
    """Rebuild a rule written by `save_rule`, with its meta-parameters."""
    path = Path(path)
    meta = read_metadata(path)
    if RULE_KEY not in meta:
        raise CheckpointError(path, f"no learned rule in it (metadata key {RULE_KEY!r} missing)")
    try:
        rule = rule_from_config(json.loads(meta[RULE_KEY]))
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(path, f"malformed learned-rule config: {type(err).__name__}: {err}") from err
    with safetensors.safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    try:
        rule.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(path, f"meta-parameters do not fit the saved config: {err}") from err
    return rule


def clone_rule(rule: LearnedRule) -> LearnedRule:
    """An independent copy of `rule` (same config and meta-parameters)."""
    copy = rule_from_config(rule.config()).to(rule.log_alpha.dtype)
    copy.load_state_dict(rule.state_dict())
    return copy
