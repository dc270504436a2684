"""Save and load a learned rule's meta-parameters as safetensors.

The weights are the rule's `state_dict()`; its `config()` (meta-network kind and
sizes, feature settings, nominal term, and for UNF meta-networks the spec they
were built over) travels as JSON in the file's metadata (`weightspace.io.save_module`,
the one format of every saved metanetwork), so `load_rule` rebuilds the rule without
any other file. Writing is atomic.
"""
from __future__ import annotations

from pathlib import Path

from ..io.module_file import load_module, save_module
from ..spec import WeightSpec
from .features import FeatureConfig
from .rule import LearnedRule, make_net


def save_rule(rule: LearnedRule, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the rule's meta-parameters and config to `path` (a .safetensors file)."""
    return save_module(rule, path, rule.config(), metadata)


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
    return load_module(path, rule_from_config)[0]


def clone_rule(rule: LearnedRule) -> LearnedRule:
    """An independent copy of `rule` (same config and meta-parameters)."""
    copy = rule_from_config(rule.config()).to(rule.log_alpha.dtype)
    copy.load_state_dict(rule.state_dict())
    return copy
