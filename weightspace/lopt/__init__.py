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
`UNFMetaNet` (UNF equivariant layers over one architecture); they live in
`weightspace.lopt.nets`, `.graph_net` and `.unf_net`, the optimizer state in `.features`, the
in-place step in `.inplace` and its compiled float32 CPU kernels in `.native` (mlp, deepset,
groups) and `.graph_native` (the graph rule).
Meta-training lives in `tasks/lopt`.
"""
from .optimizer import LearnedOptimizer
from .rule import LearnedRule
from .serialize import load_rule, save_rule

__all__ = ["LearnedOptimizer", "LearnedRule", "load_rule", "save_rule"]
