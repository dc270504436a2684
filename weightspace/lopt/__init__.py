"""Learned optimizers whose update rule can respect the task model's weight-space symmetry.

    import weightspace as ws
    from weightspace.lopt import LearnedOptimizer, LearnedRule, load_rule, save_rule
    spec = ws.parse(model, (x,))
    rule = LearnedRule.build("groups")            # or "mlp", "deepset", "graph", "unf" (spec=spec)
    opt = LearnedOptimizer(model.named_parameters(), rule, spec=spec)

The update is `lr · α · (nominal + β · rms(nominal) · tanh(f(features)))` (UNF §4.2 with
per-tensor magnitude control; `bound="none"` gives `nominal + β · f`), with f one of:
`PerParameterMLP` (Metz et al.), `DeepSetMLP` (per-tensor pooled context),
`GroupContextMLP` (Deep Set over the spec's groups; spec-equivariant, any
architecture), `GraphMetaNet` (message passing over the parameter graph with the
graph metanetwork's per-edge head; any architecture; needs torch_geometric) and
`UNFMetaNet` (UNF equivariant layers over one architecture).
Meta-training lives in `tasks/lopt`.
"""
from ..errors import LoptError
from .features import FeatureConfig, features, init_state, update_state
from .nets import DeepSetMLP, GroupContextMLP, MetaNet, PerParameterMLP
from .optimizer import LearnedOptimizer
from .rule import BOUNDS, NET_KINDS, NOMINALS, LearnedRule, make_net
from .serialize import clone_rule, load_rule, rule_from_config, save_rule
from .unf_net import UNFMetaNet, prepare_spec

__all__ = [
    "BOUNDS",
    "NET_KINDS",
    "NOMINALS",
    "DeepSetMLP",
    "FeatureConfig",
    "GraphMetaNet",
    "GroupContextMLP",
    "LearnedOptimizer",
    "LearnedRule",
    "LoptError",
    "MetaNet",
    "PerParameterMLP",
    "UNFMetaNet",
    "clone_rule",
    "features",
    "init_state",
    "load_rule",
    "make_net",
    "prepare_spec",
    "rule_from_config",
    "save_rule",
    "update_state",
]


def __getattr__(name: str):
    """`GraphMetaNet` is imported on first use: it needs torch_geometric (the graph extra)."""
    if name == "GraphMetaNet":
        from .graph_net import GraphMetaNet

        return GraphMetaNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
