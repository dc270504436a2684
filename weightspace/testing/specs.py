"""Hand-written specs of plain MLP, CNN and attention weight spaces, for tests.

They are written out by hand (provenance "manual") rather than traced, so that tests
of the group action, of metanetworks and of the parser have a reference that does
not depend on the code under test.
"""
from __future__ import annotations

from typing import Sequence

from ..errors import ConfigError
from ..spec import Entry, ExtraAction, Factor, Group, WeightSpec

# Activations after which hidden units have a further symmetry: sign flips through
# odd activations, positive rescaling through positively homogeneous ones.
SIGN_ACTIVATIONS = ("tanh", "sin")
SCALE_ACTIVATIONS = ("relu", "leaky_relu")


def _extra_for(activation: str | None) -> tuple[str, ...]:
    if activation is None or activation in ("identity", "sigmoid", "gelu"):
        return ()
    if activation in SIGN_ACTIVATIONS:
        return ("sign",)
    if activation in SCALE_ACTIVATIONS:
        return ("scale",)
    raise ConfigError(
        f"unknown activation {activation!r}; expected None or one of "
        f"{SIGN_ACTIVATIONS + SCALE_ACTIVATIONS + ('identity', 'sigmoid', 'gelu')}"
    )


def _axis(group: str | None, size: int) -> tuple[Factor, ...]:
    return (Factor(group, size),)


def random_mlp_spec(
    widths: Sequence[int], *, bias: bool = True, activation: str | None = None
) -> WeightSpec:
    """Spec of an MLP `layers.{i}` = Linear(widths[i], widths[i+1]).

    The hidden units after layer i form group `h{i+1}` (kind "neuron"); input and
    output units are fixed. `activation` ("tanh"/"sin": sign, "relu"/"leaky_relu":
    scale) adds the extra symmetry it allows to every hidden group.
    """
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1:
        raise ConfigError(f"an MLP needs at least two positive widths, got {widths}")
    extra = _extra_for(activation)
    n_layers = len(widths) - 1
    entries: dict[str, Entry] = {}
    actions: dict[str, list[ExtraAction]] = {f"h{i}": [] for i in range(1, n_layers)}
    for i in range(n_layers):
        out_g = f"h{i + 1}" if i + 1 < n_layers else None
        in_g = f"h{i}" if i > 0 else None
        w = f"layers.{i}.weight"
        entries[w] = Entry(w, (widths[i + 1], widths[i]), (_axis(out_g, widths[i + 1]), _axis(in_g, widths[i])))
        if out_g is not None:
            actions[out_g].append(ExtraAction(w, 0, 1))
        if in_g is not None:
            actions[in_g].append(ExtraAction(w, 1, -1))
        if bias:
            b = f"layers.{i}.bias"
            entries[b] = Entry(b, (widths[i + 1],), (_axis(out_g, widths[i + 1]),))
            if out_g is not None:
                actions[out_g].append(ExtraAction(b, 0, 1))
    groups = {
        name: Group(name, widths[i], "neuron", extra, tuple(actions[name]) if extra else ())
        for i, name in ((i, f"h{i}") for i in range(1, n_layers))
    }
    return WeightSpec(entries, groups, provenance="manual")


def random_cnn_spec(
    channels: Sequence[int],
    kernel: int,
    flatten_hw: int,
    classes: int,
    *,
    bias: bool = True,
    activation: str | None = None,
    batchnorm: bool = False,
) -> WeightSpec:
    """Spec of `convs.{i}` = Conv2d(channels[i], channels[i+1], kernel), flatten, `head` Linear.

    Each conv's output channels form group `c{i+1}` (kind "channel"). The flatten
    turns the last channels into `channels[-1] * flatten_hw` features: the head's
    input axis has two factors, (c_last, fixed flatten_hw), channel-major as
    `torch.flatten` lays them out. `batchnorm` adds `norms.{i}` (BatchNorm2d with
    running statistics) after each conv; the extra symmetry then acts on the norm's
    affine parameters instead of the conv's outputs.
    """
    channels = [int(c) for c in channels]
    if len(channels) < 2 or min(channels) < 1 or kernel < 1 or flatten_hw < 1 or classes < 1:
        raise ConfigError(
            f"a CNN needs at least two positive channel counts and positive kernel, flatten_hw and "
            f"classes; got channels={channels}, kernel={kernel}, flatten_hw={flatten_hw}, classes={classes}"
        )
    extra = _extra_for(activation)
    entries: dict[str, Entry] = {}
    actions: dict[str, list[ExtraAction]] = {f"c{i}": [] for i in range(1, len(channels))}
    for i in range(len(channels) - 1):
        c_in, c_out = channels[i], channels[i + 1]
        out_g, in_g = f"c{i + 1}", (f"c{i}" if i > 0 else None)
        w = f"convs.{i}.weight"
        entries[w] = Entry(
            w,
            (c_out, c_in, kernel, kernel),
            (_axis(out_g, c_out), _axis(in_g, c_in), _axis(None, kernel), _axis(None, kernel)),
        )
        scaled = [w] if not batchnorm else []
        if in_g is not None:
            actions[in_g].append(ExtraAction(w, 1, -1))
        if bias:
            entries[f"convs.{i}.bias"] = Entry(f"convs.{i}.bias", (c_out,), (_axis(out_g, c_out),))
            scaled += [f"convs.{i}.bias"] if not batchnorm else []
        if batchnorm:
            for name in ("weight", "bias", "running_mean", "running_var"):
                key = f"norms.{i}.{name}"
                entries[key] = Entry(key, (c_out,), (_axis(out_g, c_out),), buffer=name.startswith("running"))
            key = f"norms.{i}.num_batches_tracked"
            entries[key] = Entry(key, (), (), buffer=True)
            scaled += [f"norms.{i}.weight", f"norms.{i}.bias"]
        actions[out_g] += [ExtraAction(k, 0, 1) for k in scaled]
    last, c_last = f"c{len(channels) - 1}", channels[-1]
    head_in = _axis(last, c_last) if flatten_hw == 1 else (Factor(last, c_last), Factor(None, flatten_hw))
    entries["head.weight"] = Entry("head.weight", (classes, c_last * flatten_hw), (_axis(None, classes), head_in))
    actions[last].append(ExtraAction("head.weight", 1, -1))
    if bias:
        entries["head.bias"] = Entry("head.bias", (classes,), (_axis(None, classes),))
    groups = {
        name: Group(name, channels[i], "channel", extra, tuple(actions[name]) if extra else ())
        for i, name in ((i, f"c{i}") for i in range(1, len(channels)))
    }
    return WeightSpec(entries, groups, provenance="manual")


def random_attention_spec(dim: int, heads: int, head_dim: int, *, bias: bool = True) -> WeightSpec:
    """Spec of one multi-head attention with separate `attn.{q,k,v,out}` projections.

    The projections' head axis has two factors (heads, within-head): `heads` permutes
    whole heads in q, k, v and out together; `qk_dim` permutes the query/key
    coordinates, `head_dim` the value coordinates, both shared by every head. The
    model dimension `dim` is fixed (model input and output).
    """
    if min(dim, heads, head_dim) < 1:
        raise ConfigError(f"dim, heads and head_dim must be positive, got {dim}, {heads}, {head_dim}")
    inner = heads * head_dim
    entries: dict[str, Entry] = {}
    for proj, within in (("q", "qk_dim"), ("k", "qk_dim"), ("v", "head_dim"), ("out", "head_dim")):
        split = (Factor("heads", heads), Factor(within, head_dim))
        w = f"attn.{proj}.weight"
        if proj == "out":
            entries[w] = Entry(w, (dim, inner), (_axis(None, dim), split))
        else:
            entries[w] = Entry(w, (inner, dim), (split, _axis(None, dim)))
        if bias:
            b = f"attn.{proj}.bias"
            entries[b] = Entry(b, (dim,), (_axis(None, dim),)) if proj == "out" else Entry(b, (inner,), (split,))
    groups = {
        "heads": Group("heads", heads, "head"),
        "qk_dim": Group("qk_dim", head_dim, "head_dim"),
        "head_dim": Group("head_dim", head_dim, "head_dim"),
    }
    return WeightSpec(entries, groups, provenance="manual")
