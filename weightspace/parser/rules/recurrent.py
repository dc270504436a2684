"""Recurrent layers (nn.RNN/GRU/LSTM as fused ATen ops).

Each layer's hidden units form one atom H acting on both axes of the recurrent
matrix and on the hidden part of the stacked gate axis (gates fixed, H). Layers are
linked through their inputs; initial/final states that carry every layer on one
axis tie the layers' H together, unless the initial state is constant or the final
state is only read layer by layer (h_n[-1]).
"""
from __future__ import annotations

import torch

from ..context import Context
from .common import is_tensor
from .registry import rule

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


@rule("lstm", "gru", "rnn_tanh", "rnn_relu")
def recurrent(ctx: Context, p: dict, out):
    name = ctx.node.target._overloadpacket.__name__
    x = p["input"]
    params = [t for t in p["params"]]
    hx = p["hx"]
    hx = list(hx) if isinstance(hx, (list, tuple)) else [hx]
    has_biases, layers = bool(p["has_biases"]), int(p["num_layers"])
    directions = 2 if p["bidirectional"] else 1
    per = 4 if has_biases else 2
    if not all(is_tensor(t) for t in params) or len(params) != per * layers * directions:
        ctx.unknown([x, *params, *hx, out], f"aten.{name}", "projections (proj_size) are not supported")
        return
    gates = GATES[name]
    feature = x.axes[-1]
    hidden: list[list[int]] = []
    for layer in range(layers):
        h = ctx.atoms.axis(params[layer * directions * per + 1].shape[1])
        ctx.atoms.hint(h, "hidden")
        hidden.append(h)
        for d in range(directions):
            base = (layer * directions + d) * per
            w_ih, w_hh = params[base], params[base + 1]
            stacked = ctx.atoms.axis(gates, fixed="gate index") + h
            ctx.unify(w_ih.axes[0], stacked)
            ctx.unify(w_hh.axes[0], stacked)
            ctx.unify(w_hh.axes[1], h)
            ctx.unify(w_ih.axes[1], feature)
            if has_biases:
                ctx.unify(params[base + 2].axes[0], stacked)
                ctx.unify(params[base + 3].axes[0], stacked)
        feature = (ctx.atoms.axis(2, fixed="direction") + h) if directions == 2 else h
    output = out[0]
    for i in range(x.ndim - 1):
        if x.shape[i] > 1:
            ctx.unify(output.axes[i], x.axes[i])
    ctx.unify(output.axes[-1], feature)
    getters = {u.args[1]: u for u in ctx.node.users if len(u.users) > 0}
    states = [t for t in hx if is_tensor(t) and t.node not in ctx.uniform_nodes]
    for i, o in enumerate(out):
        if i >= 1 and i in getters and not _per_layer(ctx, getters[i], o, hidden, directions):
            states.append(o)
    for s in states:
        if s.shape[-1] > 1:
            for h in hidden:
                ctx.unify(s.axes[-1], h)
    for s in [t for t in hx if is_tensor(t)] + list(out[1:]):
        if s.ndim == 3 and s.shape[1] > 1 and x.ndim == 3:
            batch = 0 if p.get("batch_first") else 1
            ctx.unify(s.axes[1], x.axes[batch])
        ctx.atoms.fix(s.axes[0], "layer × direction index")


def _per_layer(ctx: Context, getter, state, hidden: list[list[int]], directions: int) -> bool:
    """A final state (h_n, c_n) read only as state[k] (constant k): each read gets its own
    layer's hidden atom, so layers stay independent. False where it is read any other way."""
    picks = {}
    for user in getter.users:
        target = user.target
        name = target._overloadpacket.__name__ if isinstance(target, torch._ops.OpOverload) else ""
        if name != "select" or user.args[0] is not getter or user.args[1] not in (0, -3) or not isinstance(user.args[2], int):
            return False
        picks[user.name] = (user.args[2] % state.shape[0]) // directions
    for node_name, layer in picks.items():
        ctx.layer_states[node_name] = hidden[layer]
    return True


@rule("lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell")
def cell(ctx: Context, p: dict, out):
    """One step of an LSTM/GRU/RNN cell: the hidden units H act on the stacked gate axis
    (gates fixed, H), both axes of w_hh's H, and the states; the batch axis passes."""
    name = ctx.node.target._overloadpacket.__name__
    x, w_ih, w_hh = p["input"], p["w_ih"], p["w_hh"]
    gates = GATES[name.removesuffix("_cell")]
    h = ctx.atoms.axis(w_hh.shape[1])
    ctx.atoms.hint(h, "hidden")
    stacked = ctx.atoms.axis(gates, fixed="gate index") + h
    ctx.unify(w_ih.axes[0], stacked)
    ctx.unify(w_hh.axes[0], stacked)
    ctx.unify(w_hh.axes[1], h)
    ctx.unify(w_ih.axes[1], x.axes[-1])
    for b in (p.get("b_ih"), p.get("b_hh")):
        if is_tensor(b):
            ctx.unify(b.axes[0], stacked)
    hx = p["hx"]
    states = [t for t in (hx if isinstance(hx, (list, tuple)) else [hx]) if is_tensor(t)]
    states += list(out) if isinstance(out, (list, tuple)) else [out]
    for s in states:
        ctx.unify(s.axes[-1], h)
        if s.ndim == 2 and x.ndim == 2 and x.shape[0] > 1:
            ctx.unify(s.axes[0], x.axes[0])
