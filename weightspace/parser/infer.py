"""Infer a `WeightSpec` from a bare state dict, from key names and shapes alone.

Covers plain chains: MLPs and SIRENs (2-D weights `[out, in]`), and conv stacks
(`[out, in, *kernel]`) with BatchNorm after convs, optionally flattened into
linear layers. Every hidden layer's output units become one permutation group.

Soundness comes first: a wrong group claims a symmetry that changes the function.
So whatever a state dict cannot settle (skip connections, attention, branches,
norms that may mix units, an order the names do not fix) raises InferenceError
instead of guessing; the traced path, `weightspace.parse(model, example_inputs)`,
handles those models.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import permutations
from typing import Mapping

import torch

from ..errors import InferenceError
from ..spec.parts import Entry, ExtraAction, Factor, FrozenAxis, Group
from ..spec.weight_spec import WeightSpec

USE_PARSE = (
    "Residual networks and transformers cannot be inferred from shapes alone; use "
    "weightspace.parse(model, example_inputs) (the traced path) instead."
)
TRACE = "Build the model and trace it instead: weightspace.parse(model, example_inputs)."
_RECURRENT_LEAF = re.compile(r"(weight|bias)_(ih|hh)(_l\d+)?(_reverse)?")
_ACTIVATION_NAME = re.compile(r"prelu|act|relu|activation")
EXTRA_OF_ACTIVATION = {"sin": "sign", "tanh": "sign", "relu": "scale", "leaky_relu": "scale"}
BN_LEAVES = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
BN_BUFFERS = {"running_mean", "running_var", "num_batches_tracked"}
MAX_RUNS = 6

_RESIDUAL = re.compile(r"downsample|shortcut|residual|skip")
_TRANSFORMER = re.compile(
    r"attn|attention|embed|in_proj|out_proj|qkv|lm_head|cls_token|pos_emb|layernorm|layer_norm|rotary"
)
_TRANSFORMER_NAMES = re.compile(r"(q|k|v|o|query|key|value|ln|ln_f|wte|wpe|mha|[qkvo]_proj)_?\d*")
_CONV_NAME = re.compile(r"conv_?(\d*)")
_BN_NAME = re.compile(r"(?:bn|batchnorm|batch_norm|norm)_?(\d*)")
_INDEXED = re.compile(r"(.*?)(\d+)")


@dataclass
class _Layer:
    """One module of the chain: a linear or conv layer, or a BatchNorm."""

    path: str
    kind: str  # "linear", "conv" or "bn"
    keys: dict[str, str]  # leaf name -> state-dict key
    shapes: dict[str, tuple[int, ...]]
    out: int
    inp: int
    norm: _Layer | None = field(default=None, repr=False)

    @property
    def main(self) -> str:
        """The key error messages name: the weight, or the first key of a norm."""
        return self.keys.get("weight") or self.keys.get("running_mean") or next(iter(self.keys.values()))


def _fail(message: str, residual: bool = False) -> InferenceError:
    """The error, with the way out: the residual/transformer note only where that is the reason."""
    return InferenceError(f"{message}. {USE_PARSE if residual else TRACE}")


def _split(key: str) -> tuple[str, str]:
    module, _, leaf = key.rpartition(".")
    return module, leaf


def _natural(path: str) -> list:
    """Numeric-aware sort key: `layers.2` < `layers.10`, `fc2` < `fc10`."""
    return [[int(c) if c.isdigit() else c for c in re.split(r"(\d+)", part)] for part in path.split(".")]


def _components(path: str) -> list[str]:
    return path.split(".") if path else []


def _check_names(keys: list[str]) -> None:
    """Refuse keys whose names say the model is residual or attention-based."""
    for key in keys:
        for part in key.lower().split("."):
            if _RESIDUAL.search(part):
                raise _fail(
                    f"key {key!r} belongs to a skip/shortcut path ({part!r}): this looks like a residual "
                    "network, whose shared residual-stream permutation a state dict does not show", residual=True
                )
            if _TRANSFORMER.search(part) or _TRANSFORMER_NAMES.fullmatch(part):
                raise _fail(f"key {key!r} ({part!r}) looks like part of an attention/transformer model", residual=True)


def _shape(key: str, value) -> tuple[int, ...]:
    if not isinstance(value, torch.Tensor):
        raise InferenceError(f"value of key {key!r} is a {type(value).__name__}, not a tensor")
    return tuple(int(s) for s in value.shape)


def _classify(path: str, keys: dict[str, str], shapes: dict[str, tuple[int, ...]]) -> _Layer:
    """Read one module's kind and sizes off its leaves, or say which key does not fit."""
    leaves = set(keys)
    where = f"module {path!r}" if path else "the top-level module"
    if "running_mean" in leaves or "running_var" in leaves:
        odd = sorted(leaves - BN_LEAVES)
        if odd or not {"running_mean", "running_var"} <= leaves:
            bad = keys[odd[0]] if odd else next(iter(keys.values()))
            raise _fail(f"cannot place key {bad!r}: {where} has running statistics but is not a BatchNorm")
        c = shapes["running_mean"]
        for leaf in leaves - {"num_batches_tracked"}:
            if shapes[leaf] != c or len(c) != 1:
                raise _fail(
                    f"cannot place key {keys[leaf]!r}: BatchNorm entries must all have shape [C], got {shapes[leaf]}"
                )
        if "num_batches_tracked" in leaves and shapes["num_batches_tracked"] != ():
            raise _fail(f"cannot place key {keys['num_batches_tracked']!r}: expected a scalar")
        return _Layer(path, "bn", keys, shapes, c[0], c[0])
    odd = sorted(leaves - {"weight", "bias"})
    recurrent = [leaf for leaf in odd if _RECURRENT_LEAF.fullmatch(leaf)]
    if recurrent:
        raise _fail(f"cannot place key {keys[recurrent[0]]!r}: {where} is a recurrent layer (RNN/LSTM/GRU "
                    "weight_ih/weight_hh), which is not inferred from a state dict")
    if odd:
        raise _fail(f"cannot place key {keys[odd[0]]!r}: {where} holds a tensor that is not a weight or bias")
    if "weight" not in leaves:
        raise _fail(f"cannot place key {keys['bias']!r}: a bias without a weight")
    w = shapes["weight"]
    if len(w) == 1:
        last = _components(path)[-1].lower() if path else ""
        if "bias" not in leaves and (_ACTIVATION_NAME.search(last) or w == (1,)):
            what = "a PReLU slope (a learned activation), which is not inferred"
        elif "bias" not in leaves:
            what = "a PReLU slope or an RMSNorm scale (no bias, no running statistics), which is not inferred"
        else:
            what = ("a 1-D weight and bias without running statistics: a LayerNorm/GroupNorm-style norm "
                    "that may mix units; only BatchNorm after a conv is inferred")
        raise _fail(f"cannot place key {keys['weight']!r}: {what}")
    if len(w) not in (2, 3, 4, 5):
        raise _fail(f"cannot place key {keys['weight']!r}: a weight of shape {w} is neither linear nor conv")
    if "bias" in leaves and shapes["bias"] != (w[0],):
        raise _fail(f"cannot place key {keys['bias']!r}: shape {shapes['bias']} does not match weight {w}")
    return _Layer(path, "linear" if len(w) == 2 else "conv", keys, shapes, w[0], w[1])


def _modules(state_dict: Mapping[str, torch.Tensor]) -> list[_Layer]:
    keys: dict[str, dict[str, str]] = {}
    shapes: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, value in state_dict.items():
        module, leaf = _split(key)
        keys.setdefault(module, {})[leaf] = key
        shapes.setdefault(module, {})[leaf] = _shape(key, value)
    return [_classify(m, keys[m], shapes[m]) for m in keys]


def _check_nesting(layers: list[_Layer]) -> None:
    """Refuse weights on two levels of one module, and ResNet-style blocks."""
    weighted = [layer for layer in layers if layer.kind != "bn"]
    paths = {layer.path: layer for layer in layers}
    for layer in layers:
        parts = _components(layer.path)
        for n in range(len(parts)):
            parent = paths.get(".".join(parts[:n]))
            if parent is not None:
                raise _fail(
                    f"cannot place key {layer.main!r}: module {parent.path!r} holds {parent.main!r} and its "
                    "submodule holds weights too (a branch?)", residual=True
                )
    blocks: dict[str, list[_Layer]] = {}
    for layer in weighted:
        parts = _components(layer.path)
        for n in range(len(parts) - 1):
            if parts[n].isdigit() and not parts[n + 1].isdigit():
                blocks.setdefault(".".join(parts[: n + 1]), []).append(layer)
    for block, members in blocks.items():
        if len(members) > 1:
            raise _fail(
                f"numbered block {block!r} holds several weighted layers "
                f"({', '.join(repr(m.main) for m in members[:3])}), the layout of residual blocks; "
                "a skip connection leaves no trace in a state dict", residual=True
            )


def _pair_norms(layers: list[_Layer]) -> list[_Layer]:
    """Attach `bnK`/`normK` to `convK` of the same module; return the layers left to order."""
    convs: dict[tuple[str, str], _Layer] = {}
    for layer in layers:
        parent, _, name = layer.path.rpartition(".")
        m = _CONV_NAME.fullmatch(name) if layer.kind == "conv" else None
        if m:
            convs[(parent, m.group(1))] = layer
    rest = []
    for layer in layers:
        parent, _, name = layer.path.rpartition(".")
        m = _BN_NAME.fullmatch(name) if layer.kind == "bn" else None
        conv = convs.get((parent, m.group(1))) if m else None
        if conv is None:
            rest.append(layer)
            continue
        if conv.out != layer.out:
            raise _fail(
                f"cannot place BatchNorm key {layer.main!r}: {layer.out} channels after {conv.main!r} with {conv.out}"
            )
        conv.norm = layer
    return rest


def _siblings(a: str, b: str) -> bool:
    """Whether the names order the two paths: they first differ in an index (`fc1`/`fc2`, `0`/`3`)."""
    pa, pb = _components(a), _components(b)
    for x, y in zip(pa, pb):
        if x == y:
            continue
        mx, my = _INDEXED.fullmatch(x), _INDEXED.fullmatch(y)
        return bool(mx and my and mx.group(1) == my.group(1))
    return False


def _runs(layers: list[_Layer]) -> list[list[_Layer]]:
    """Split the naturally sorted layers into runs whose order the names fix."""
    ordered = sorted(layers, key=lambda layer: _natural(layer.path))
    runs = [[ordered[0]]]
    for prev, cur in zip(ordered, ordered[1:]):
        if _siblings(prev.path, cur.path):
            runs[-1].append(cur)
        else:
            runs.append([cur])
    return runs


def _problem(seq: list[_Layer], skip_first_norm: bool = False) -> tuple[int, str] | None:
    """Where and why `seq` is not a plain chain, or None when it is."""
    prev_item: _Layer | None = None
    weighted: list[_Layer] = []
    for pos, item in enumerate(seq):
        if item.kind == "bn":
            if prev_item is None and skip_first_norm:
                prev_item = item
                continue
            if prev_item is None or prev_item.kind != "conv" or prev_item.norm is not None:
                return pos, f"cannot place BatchNorm key {item.main!r}: it does not directly follow a conv layer"
            if prev_item.out != item.out:
                return pos, (
                    f"cannot place BatchNorm key {item.main!r}: {item.out} channels after "
                    f"{prev_item.main!r} with {prev_item.out}"
                )
            prev_item = item
            continue
        if weighted:
            prev = weighted[-1]
            if prev.kind == "linear" and item.kind == "conv":
                return pos, (
                    f"conv key {item.main!r} follows linear {prev.main!r}; only conv layers followed by "
                    "linear ones are inferred"
                )
            if prev.kind == item.kind == "conv" and len(prev.shapes["weight"]) != len(item.shapes["weight"]):
                return pos, f"conv key {item.main!r} has a different kernel rank from {prev.main!r}"
            flatten = prev.kind == "conv" and item.kind == "linear"
            if not (item.inp % prev.out == 0 if flatten else item.inp == prev.out):
                return pos, _break_message(item, prev, weighted[:-1], flatten)
        weighted.append(item)
        prev_item = item
    return None


def _break_message(item: _Layer, prev: _Layer, earlier: list[_Layer], flatten: bool) -> str:
    msg = (
        f"dims do not chain at module {item.path!r}: {item.main!r} takes {item.inp} inputs, but the "
        f"previous layer {prev.main!r} gives {prev.out}{' channels (expected a multiple)' if flatten else ''}"
    )
    source = next((e for e in reversed(earlier) if e.out == item.inp), None)
    if source is not None:
        msg += (
            f"; its input size matches the output of the earlier {source.main!r}, as a skip/residual "
            "connection or a parallel branch would"
        )
    return msg


def _order(layers: list[_Layer]) -> list[_Layer]:
    """The one chain order the names and shapes allow, else InferenceError."""
    runs = _runs(layers)
    for run in runs:
        problem = _problem(run, skip_first_norm=len(runs) > 1)
        if problem:
            raise _fail(problem[1], residual="skip/residual" in problem[1])
    if len(runs) == 1:
        return runs[0]
    names = " ".join(f"[{', '.join(layer.path or '<top>' for layer in run)}]" for run in runs)
    if len(runs) > MAX_RUNS:
        raise _fail(f"the module paths do not fix the layer order ({len(runs)} unrelated name groups: {names})")
    valid, problems = [], []
    for p in permutations(runs):
        problem = _problem([layer for run in p for layer in run])
        (problems if problem else valid).append(problem or p)
    if len(valid) == 1:
        return [layer for run in valid[0] for layer in run]
    if not valid:
        furthest = max(problems, key=lambda pr: pr[0])[1]
        raise _fail(f"{furthest} (no order of the layer groups {names} chains: {_dims(runs)})")
    raise _fail(
        f"the module paths do not fix the layer order and the shapes chain in {len(valid)} orders "
        f"({', '.join(' -> '.join(r[0].path or '<top>' for r in p) for p in valid[:3])}); "
        f"ambiguous keys: {', '.join(repr(r[0].main) for r in runs)}"
    )


def _dims(runs: list[list[_Layer]]) -> str:
    parts = []
    for run in runs:
        w = [layer for layer in run if layer.kind != "bn"]
        if w:
            parts.append(f"{w[0].path or '<top>'}: {w[0].inp} -> {w[-1].out}")
    return "; ".join(parts)


def _axis(group: str | None, n: int) -> tuple[Factor, ...]:
    """The factor list of an axis of size n (empty for size 1)."""
    return () if n == 1 else (Factor(group, n),)


def _build(state_dict: Mapping[str, torch.Tensor], chain: list[_Layer], extra: str | None) -> WeightSpec:
    weighted = [layer for layer in chain if layer.kind != "bn"]
    for i, layer in enumerate(chain):
        if layer.kind == "bn":
            chain[i - 1].norm = layer
    axes: dict[str, tuple[tuple[Factor, ...], ...]] = {}
    groups: dict[str, Group] = {}
    frozen: list[FrozenAxis] = []
    last = len(weighted) - 1
    prev_group: str | None = None
    for i, layer in enumerate(weighted):
        group = f"{layer.path}.out" if i < last and layer.out > 1 else None
        w_key, w_shape = layer.keys["weight"], layer.shapes["weight"]
        if i == 0:
            in_axis = _axis(None, layer.inp)
            if layer.inp > 1:
                frozen.append(FrozenAxis(w_key, 1, "model input"))
        elif weighted[i - 1].kind == "conv" and layer.kind == "linear":
            c = weighted[i - 1].out
            in_axis = _axis(prev_group, c) + _axis(None, layer.inp // c)
            if layer.inp > c:
                frozen.append(FrozenAxis(w_key, 1, "flattened spatial positions of the conv output"))
        else:
            in_axis = _axis(prev_group, layer.inp)
        axes[w_key] = (_axis(group, layer.out), in_axis, *(_axis(None, k) for k in w_shape[2:]))
        frozen.extend(FrozenAxis(w_key, a, "conv kernel axis") for a in range(2, len(w_shape)) if w_shape[a] > 1)
        if "bias" in layer.keys:
            axes[layer.keys["bias"]] = (_axis(group, layer.out),)
        if i == last and layer.out > 1:
            frozen.append(FrozenAxis(w_key, 0, "model output"))
        if layer.norm is not None:
            for leaf, key in layer.norm.keys.items():
                axes[key] = () if leaf == "num_batches_tracked" else (_axis(group, layer.out),)
        if group is not None:
            actions: tuple[ExtraAction, ...] = ()
            if extra is not None and layer.norm is None and not (extra == "sign" and layer.kind == "conv"):
                nxt = weighted[i + 1].keys["weight"]
                actions = (ExtraAction(w_key, 0, 1),)
                if "bias" in layer.keys:
                    actions += (ExtraAction(layer.keys["bias"], 0, 1),)
                actions += (ExtraAction(nxt, 1, -1),)
            kind = "channel" if layer.kind == "conv" else "neuron"
            groups[group] = Group(group, layer.out, kind, (extra,) if actions else (), actions)
        prev_group = group
    entries = {}
    for key, value in state_dict.items():
        entries[key] = Entry(key, _shape(key, value), axes[key], _split(key)[1] in BN_BUFFERS)
    return WeightSpec(entries, groups, frozen=tuple(frozen), provenance="inferred", verified=False)


def infer_spec(state_dict: Mapping[str, torch.Tensor], *, activation: str | None = None) -> WeightSpec:
    """Infer the permutation spec of a plain MLP/SIREN/conv chain from its state dict.

    Layers are ordered by the numeric-aware order of their module paths (never by
    dict order: safetensors sorts `layers.10` before `layers.2`); where the names
    leave groups of layers unordered, the one order whose shapes chain is used.
    `activation` ("sin", "tanh", "relu", "leaky_relu") additionally records the
    sign or positive-scale symmetry it allows on hidden units not followed by a
    BatchNorm; None records none. Sign flips are not recorded on conv channels,
    since a max-pool (invisible in a state dict) does not commute with them.
    The result has provenance "inferred" and is unverified. Raises
    InferenceError, naming the key, on anything ambiguous.
    """
    if activation is not None and activation not in EXTRA_OF_ACTIVATION:
        raise InferenceError(
            f"unknown activation {activation!r}; expected one of {sorted(EXTRA_OF_ACTIVATION)} or None"
        )
    if not state_dict:
        raise InferenceError("the state dict is empty: there is nothing to infer a spec from")
    _check_names(list(state_dict))
    layers = _modules(state_dict)
    if not any(layer.kind != "bn" for layer in layers):
        raise InferenceError(
            f"the state dict holds no linear or conv weights (keys: {list(state_dict)[:5]}); nothing to infer"
        )
    _check_nesting(layers)
    chain = _order(_pair_norms(layers))
    extra = EXTRA_OF_ACTIVATION[activation] if activation is not None else None
    return _build(state_dict, chain, extra)
