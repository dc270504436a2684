"""Extra symmetries from activations: sign flips through odd activations (tanh,
sin) and positive rescaling through ReLU-family ones.

A candidate is an activation applied directly (up to a scalar factor such as
SIREN's ω0) to the sole output of a linear/conv whose output units form one group
on their own. The producing weight's rows and bias get s, every other place the
group acts gets s⁻¹. Verification then drops any candidate that moves outputs.
"""
from __future__ import annotations

import numbers
from dataclasses import replace

import torch

from ..spec import ExtraAction, WeightSpec
from .context import packet
from .trace import Trace

ACTIVATIONS = {"tanh": "sign", "sin": "sign", "relu": "scale", "leaky_relu": "scale"}
PRODUCERS = {"linear": (1, 2), "conv1d": (1, 2), "conv2d": (1, 2), "conv3d": (1, 2), "convolution": (1, 2), "addmm": (2, 0)}
SCALARS = {"mul", "div"}
VIEWS = {"t", "permute", "transpose"}


def _source(node):
    """Skip single-use multiplications/divisions by a Python scalar."""
    while packet(node) in SCALARS and len(node.users) == 1:
        tensors = [a for a in node.args if isinstance(a, torch.fx.Node)]
        scalars = [a for a in node.args if isinstance(a, numbers.Number)]
        if len(tensors) != 1 or len(scalars) != 1 or node.args[0] is not tensors[0]:
            return node
        node = tensors[0]
    return node


def _param(node, key_of_node: dict[str, str]) -> tuple[str | None, bool]:
    """The state-dict key behind `node`, and whether it was seen through a transpose."""
    transposed = False
    while isinstance(node, torch.fx.Node) and packet(node) in VIEWS:
        node, transposed = node.args[0], not transposed
    key = key_of_node.get(node.name) if isinstance(node, torch.fx.Node) else None
    return key, transposed


def add_extras(spec: WeightSpec, tr: Trace) -> WeightSpec:
    """The spec with candidate sign/scale symmetries recorded (to be verified)."""
    key_of_node = {n: k for k, n in tr.node_of_key.items()}
    sites: dict[str, list[tuple[str, str, str | None, int]]] = {}
    for node in tr.program.graph.nodes:
        name = packet(node)
        if not name or name.rstrip("_") not in ACTIVATIONS or not node.args:
            continue
        src = _source(node.args[0])
        if packet(src) not in PRODUCERS or len(src.users) != 1:
            continue
        w_at, b_at = PRODUCERS[packet(src)]
        weight, transposed = _param(src.args[w_at], key_of_node) if len(src.args) > w_at else (None, False)
        bias = _param(src.args[b_at], key_of_node)[0] if len(src.args) > b_at else None
        if weight is None:
            continue
        w_axis = 1 if packet(src) == "addmm" and not transposed else 0
        factors = spec.entries[weight].axes[w_axis]
        if len(factors) != 1 or factors[0].group is None:
            continue
        sites.setdefault(factors[0].group, []).append((ACTIVATIONS[name.rstrip("_")], weight, bias, w_axis))
    groups = dict(spec.groups)
    for group, found in sites.items():
        if len(found) != 1:
            continue
        kind, weight, bias, w_axis = found[0]
        incoming = {(weight, w_axis)} | ({(bias, 0)} if bias else set())
        members = spec.members(group)
        producers = {
            (m.key, m.axis) for m in members if m.axis == 0 and len(spec.entries[m.key].shape) >= 2
        } - incoming
        if producers or any(spec.entries[m.key].buffer for m in members):  # buffers: statistics, indices
            continue
        places = dict.fromkeys((m.key, m.axis) for m in members)
        actions = tuple(ExtraAction(k, a, 1 if (k, a) in incoming else -1) for k, a in places)
        groups[group] = replace(groups[group], extra=(kind,), extra_action=actions)
    return replace(spec, groups=groups)
