"""The fixed vocabularies of node and edge types (shared by every architecture, so
that graphs of different networks collate into one batch with one embedding table)."""
from __future__ import annotations

NODE_TYPES: tuple[str, ...] = (
    "input",  # fixed units only read (model inputs, vocabulary rows, positions)
    "output",  # fixed units only written (logits, regression targets)
    "fixed",  # fixed units both read and written, or unused
    "neuron", "channel", "head", "head_dim", "residual", "hidden", "unit",  # one permutation group (its kind)
    "product",  # an axis made of several groups, e.g. (head, head_dim)
    "mixed",  # an axis of groups and fixed factors, e.g. (channel, h*w) after flatten or (q|k|v, head, head_dim)
    "param",  # one node per vector/scalar entry (bias, norm gain, running statistic)
)

EDGE_TYPES: tuple[str, ...] = (
    "linear", "conv", "embedding", "table", "recurrent",
    "q", "k", "v", "o", "qkv",
    "bias", "gain", "norm_weight", "norm_bias", "running_mean", "running_var", "vector", "scalar",
    "member",  # structural: a unit of a factored axis -> the unit of one of its factors
    "other",
)

NODE_TYPE = {name: i for i, name in enumerate(NODE_TYPES)}
EDGE_TYPE = {name: i for i, name in enumerate(EDGE_TYPES)}

_NORMS = {"batch_norm", "layer_norm", "rms_norm", "group_norm", "instance_norm", "native_layer_norm", "native_batch_norm"}
_RECURRENT = {"gru", "lstm", "rnn_tanh", "rnn_relu"}


def vector_type(key: str, op: str, arg: str) -> str:
    """Edge type of a vector entry from the op and argument that consume it (or its name)."""
    norm = op in _NORMS or "norm" in op
    if arg in ("running_mean", "running_var"):
        return arg
    if norm:
        return "norm_weight" if arg == "weight" else "norm_bias" if arg == "bias" else "vector"
    if op in _RECURRENT:
        return "bias"
    if arg == "bias" or (op in ("addmm", "add", "baddbmm", "addmv") and arg in ("self", "other", "input")):
        return "bias"
    if op == "mul":
        return "gain"
    if not op:
        tail = key.rsplit(".", 1)[-1]
        if tail in ("running_mean", "running_var"):
            return tail
        return "bias" if "bias" in tail else "gain" if "weight" in tail else "vector"
    return "vector"


def weight_type(op: str, attention: str | None, rank: int) -> str:
    """Edge type of a weight entry (two or more unit axes)."""
    if attention:
        return attention
    if op in _RECURRENT:
        return "recurrent"
    if op.startswith("conv") or op in ("convolution", "_convolution"):
        return "conv"
    if op in ("linear", "addmm", "mm", "matmul", "bmm", "einsum", "baddbmm"):
        return "linear"
    if op == "embedding":
        return "embedding"
    if op in ("add", "cat"):
        return "table"
    if not op:
        return "conv" if rank >= 3 else "linear"
    return "other"
