"""`infer_spec` on bare state dicts: inferred groups are true symmetries; ambiguity raises."""
from __future__ import annotations

import random

import pytest
import torch
from torch import nn
from torch.func import functional_call

from weightspace.errors import InferenceError
from weightspace.parser.infer import infer_spec
from weightspace.spec.weight_spec import WeightSpec

SEEDS = range(4)


# ---------------------------------------------------------------------- models
class MLP(nn.Module):
    """`layers.i` linear layers with an activation between them."""

    def __init__(self, widths: list[int], act: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.act = act

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x


class NamedMLP(nn.Module):
    """`fc1`, `fc2`, `out`: names that order only part of the chain."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(5, 12), nn.Linear(12, 9), nn.Linear(9, 3)

    def forward(self, x):
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class SineLayer(nn.Module):
    def __init__(self, n_in: int, n_out: int, w0: float = 30.0):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.w0 = w0

    def forward(self, x):
        return torch.sin(self.w0 * self.linear(x))


class Siren(nn.Module):
    """`net.i.linear` sine layers, then a plain `net.k` linear output."""

    def __init__(self, widths: list[int]):
        super().__init__()
        hidden = [SineLayer(a, b) for a, b in zip(widths[:-2], widths[1:-1])]
        self.net = nn.Sequential(*hidden, nn.Linear(widths[-2], widths[-1]))

    def forward(self, x):
        return self.net(x)


def cnn2d() -> nn.Module:
    """`features.*` conv+BN, `classifier.*` linear: alphabetical order puts the head first."""
    model = nn.Module()
    model.features = nn.Sequential(
        nn.Conv2d(2, 6, 3), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 5, 3), nn.BatchNorm2d(5), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
    )
    model.classifier = nn.Sequential(nn.Flatten(), nn.Linear(5 * 4, 7), nn.ReLU(), nn.Linear(7, 3))
    model.forward = lambda x: model.classifier(model.features(x))
    return model


class CNN1d(nn.Module):
    """`conv1/bn1/conv2/bn2/conv3/fc1/fc2`, max-pool and flatten (C·k linear in-dim)."""

    def __init__(self, act: nn.Module):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv1d(3, 8, 3), nn.BatchNorm1d(8)
        self.conv2, self.bn2 = nn.Conv1d(8, 6, 3), nn.BatchNorm1d(6)
        self.conv3 = nn.Conv1d(6, 4, 3)
        self.fc1, self.fc2 = nn.Linear(4 * 7, 10), nn.Linear(10, 2)
        self.act = act

    def forward(self, x):
        x = self.act(self.bn1(self.conv1(x)))
        x = self.act(self.bn2(self.conv2(x)))
        x = nn.functional.max_pool1d(self.act(self.conv3(x)), 2).flatten(1)
        return self.fc2(self.act(self.fc1(x)))


class ConvNoBN(nn.Module):
    """conv -> act -> conv -> act -> flatten -> linear: every group may carry extras."""

    def __init__(self, act: nn.Module):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3), act, nn.Conv2d(4, 3, 3), act, nn.Flatten(), nn.Linear(3 * 16, 6)
        )

    def forward(self, x):
        return self.body(x)


def _randomise_norms(model: nn.Module, gen: torch.Generator) -> None:
    """Give every BatchNorm non-trivial statistics and affine parameters."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen, dtype=torch.float64))
            m.running_var.copy_(torch.rand(c, generator=gen, dtype=torch.float64) + 0.5)
            m.weight.data.copy_(torch.randn(c, generator=gen, dtype=torch.float64))
            m.bias.data.copy_(torch.randn(c, generator=gen, dtype=torch.float64))


def _prepare(model: nn.Module, seed: int = 0) -> nn.Module:
    """float64, eval mode, scale-preserving random weights, non-trivial BatchNorm statistics."""
    gen = torch.Generator().manual_seed(seed)
    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 50
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * (2 / fan_in) ** 0.5)
        _randomise_norms(model, gen)
    return model


def _changed(model: nn.Module, sd: dict, ref: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether `sd` computes a clearly different function from the one giving `ref`."""
    return bool((_out(model, sd, x) - ref).abs().max() > 1e-2 * ref.abs().max())


def _out(model: nn.Module, sd: dict, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return functional_call(model, sd, (x,))


def _reordered(sd: dict, seed: int) -> list[dict]:
    """The same dict shuffled, and sorted alphabetically (as safetensors stores it)."""
    keys = list(sd)
    random.Random(seed).shuffle(keys)
    return [{k: sd[k] for k in keys}, {k: sd[k] for k in sorted(sd)}]


MLP_WIDTHS = [[3, 1], [3, 8, 2], [2, 16, 16, 1], [4, 7, 5, 9, 3], [2] + [6, 5, 4, 7, 3, 5, 8, 6, 4, 5, 7, 6] + [1]]

# name -> (model factory, input, expected {group: size})
CASES = {
    **{
        f"mlp{len(w) - 2}": (
            lambda w=w: MLP(w, nn.ReLU()),
            torch.randn(6, w[0]),
            {f"layers.{i}.out": n for i, n in enumerate(w[1:-1])},
        )
        for w in MLP_WIDTHS
    },
    "named_mlp": (NamedMLP, torch.randn(6, 5), {"fc1.out": 12, "fc2.out": 9}),
    "siren": (
        lambda: Siren([2, 12, 10, 12, 1]),
        torch.rand(6, 2) * 2 - 1,
        {"net.0.linear.out": 12, "net.1.linear.out": 10, "net.2.linear.out": 12},
    ),
    "cnn2d_bn": (cnn2d, torch.randn(4, 2, 7, 7), {"features.0.out": 6, "features.3.out": 5, "classifier.1.out": 7}),
    "cnn1d_bn": (
        lambda: CNN1d(nn.ReLU()),
        torch.randn(4, 3, 20),
        {"conv1.out": 8, "conv2.out": 6, "conv3.out": 4, "fc1.out": 10},
    ),
}


def _first_weight(spec: WeightSpec) -> str:
    return next(k for k, e in spec.entries.items() if len(e.shape) >= 2 and e.axes[0] and e.axes[0][0].group)


# ---------------------------------------------------------------------- properties
@pytest.mark.parametrize("name", list(CASES))
def test_groups_are_exact_and_independent_of_key_order(name):
    make, _, expected = CASES[name]
    sd = _prepare(make()).state_dict()
    spec = infer_spec(sd)
    assert {n: g.size for n, g in spec.groups.items()} == expected
    assert spec.provenance == "inferred" and not spec.verified
    assert list(spec.entries) == list(sd)
    assert all(not g.extra for g in spec.groups.values())
    for key, e in spec.entries.items():
        assert e.buffer == key.endswith(("running_mean", "running_var", "num_batches_tracked"))
    for other in _reordered(sd, seed=len(name)):
        again = infer_spec(other)
        assert again.groups == spec.groups and again.entries == spec.entries
    assert WeightSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("name", [n for n in CASES if n != "mlp0"])
def test_random_elements_keep_the_function(name):
    make, x, _ = CASES[name]
    model = _prepare(make())
    sd = model.state_dict()
    x = x.double()
    spec = infer_spec(sd)
    ref = _out(model, sd, x)
    for s in SEEDS:
        new = spec.apply(sd, spec.random_element(torch.Generator().manual_seed(s)))
        assert any(not torch.equal(new[k], sd[k]) for k in sd)
        torch.testing.assert_close(_out(model, new, x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in CASES if n != "mlp0"])
def test_permuting_one_tensor_alone_changes_the_function(name):
    make, x, _ = CASES[name]
    model = _prepare(make())
    sd = model.state_dict()
    x = x.double()
    key = _first_weight(infer_spec(sd))
    broken = dict(sd, **{key: torch.roll(sd[key], 1, dims=0)})
    assert _changed(model, broken, _out(model, sd, x), x)


EXTRA_CASES = {
    "mlp_tanh": (lambda: MLP([3, 9, 7, 2], nn.Tanh()), torch.randn(6, 3), "tanh", "sign", 2),
    "siren_sin": (lambda: Siren([2, 12, 10, 1]), torch.rand(6, 2) * 2 - 1, "sin", "sign", 2),
    "mlp_relu_deep": (lambda: MLP([3] + [6] * 11 + [2], nn.ReLU()), torch.randn(6, 3), "relu", "scale", 11),
    "mlp_leaky": (lambda: MLP([3, 8, 5, 2], nn.LeakyReLU(0.1)), torch.randn(6, 3), "leaky_relu", "scale", 2),
    "conv_relu_flatten": (lambda: ConvNoBN(nn.ReLU()), torch.randn(4, 1, 8, 8), "relu", "scale", 2),
    "cnn1d_bn_relu": (lambda: CNN1d(nn.ReLU()), torch.randn(4, 3, 20), "relu", "scale", 2),
    "conv_tanh": (lambda: ConvNoBN(nn.Tanh()), torch.randn(4, 1, 8, 8), "tanh", "sign", 0),
}


@pytest.mark.parametrize("name", list(EXTRA_CASES))
def test_extra_symmetries_keep_the_function(name):
    make, x, activation, kind, n_extra = EXTRA_CASES[name]
    model = _prepare(make())
    sd = model.state_dict()
    x = x.double()
    spec = infer_spec(sd, activation=activation)
    with_extra = [g for g in spec.groups.values() if g.extra]
    assert len(with_extra) == n_extra and all(g.extra == (kind,) for g in with_extra)
    for g in spec.groups.values():
        followed_by_norm = any("bn" in m.key for m in spec.members(g.name))
        assert not (followed_by_norm and g.extra)
    ref = _out(model, sd, x)
    for s in SEEDS:
        new = spec.apply(sd, spec.random_element(torch.Generator().manual_seed(s), extra=True))
        torch.testing.assert_close(_out(model, new, x), ref, rtol=1e-5, atol=1e-5)
    if n_extra:
        g = with_extra[0]
        mult = torch.full((g.size,), -1.0 if kind == "sign" else 2.0)
        act = g.extra_action[0]
        lone = dict(sd, **{act.key: sd[act.key] * mult.double().reshape(-1, *[1] * (sd[act.key].dim() - 1))})
        assert _changed(model, lone, ref, x)


def test_no_activation_records_no_extras():
    spec = infer_spec(MLP([3, 5, 4, 2], nn.Tanh()).state_dict())
    assert all(not g.extra and not g.extra_action for g in spec.groups.values())


def test_single_layer_has_no_groups():
    spec = infer_spec(nn.Linear(4, 3).state_dict())
    assert spec.groups == {} and set(spec.entries) == {"weight", "bias"}


# ---------------------------------------------------------------------- refusals
def _t(*shape: int) -> torch.Tensor:
    return torch.zeros(shape)


def _bn(prefix: str, c: int) -> dict:
    return {
        f"{prefix}.weight": _t(c), f"{prefix}.bias": _t(c), f"{prefix}.running_mean": _t(c),
        f"{prefix}.running_var": _t(c), f"{prefix}.num_batches_tracked": torch.tensor(0),
    }


def _raises(sd: dict, *names: str, activation: str | None = None) -> str:
    with pytest.raises(InferenceError) as info:
        infer_spec(sd, activation=activation)
    msg = str(info.value)
    for name in names:
        assert name in msg, msg
    return msg


def _resnet(downsample: bool) -> dict:
    sd = {"conv1.weight": _t(16, 3, 3, 3), **_bn("bn1", 16)}
    for stage, (cin, cout) in (("layer1", (16, 16)), ("layer2", (16, 32))):
        sd.update({f"{stage}.0.conv1.weight": _t(cout, cin, 3, 3), **_bn(f"{stage}.0.bn1", cout)})
        sd.update({f"{stage}.0.conv2.weight": _t(cout, cout, 3, 3), **_bn(f"{stage}.0.bn2", cout)})
        if downsample and cin != cout:
            sd.update({f"{stage}.0.downsample.0.weight": _t(cout, cin, 1, 1), **_bn(f"{stage}.0.downsample.1", cout)})
    sd.update({"fc.weight": _t(10, 32), "fc.bias": _t(10)})
    return sd


def test_resnet_with_downsample_is_refused():
    msg = _raises(_resnet(True), "layer2.0.downsample.0.weight", "weightspace.parse(model, example_inputs)")
    assert "residual" in msg.lower()


def test_resnet_without_shortcut_parameters_is_refused():
    _raises(_resnet(False), "layer1.0", "weightspace.parse")


@pytest.mark.parametrize(
    "sd, key",
    [
        ({"embed.weight": _t(100, 16), "blocks.0.attn.q_proj.weight": _t(16, 16)}, "embed.weight"),
        ({"layers.0.q_proj.weight": _t(16, 16), "layers.0.k_proj.weight": _t(16, 16)}, "layers.0.q_proj.weight"),
        ({"q.weight": _t(8, 8), "k.weight": _t(8, 8), "v.weight": _t(8, 8)}, "q.weight"),
    ],
)
def test_transformer_keys_are_refused(sd, key):
    _raises(sd, key, "transformer", "weightspace.parse")


def test_real_transformer_layer_is_refused():
    _raises(nn.TransformerEncoderLayer(8, 2, 16).state_dict(), "self_attn", "weightspace.parse")


def test_broken_chain_names_the_module():
    sd = {"layers.0.weight": _t(16, 4), "layers.1.weight": _t(16, 8)}
    _raises(sd, "'layers.1'", "layers.1.weight", "weightspace.parse")


def test_skip_connection_dims_are_named():
    sd = {"layers.0.weight": _t(16, 4), "layers.1.weight": _t(32, 16), "layers.2.weight": _t(8, 16)}
    msg = _raises(sd, "layers.2.weight", "layers.0.weight")
    assert "skip" in msg


def test_shuffled_broken_chain_is_still_refused():
    sd = {f"layers.{i}.weight": _t(8, 8) for i in range(12)}
    sd["layers.10.weight"] = _t(8, 5)
    for other in _reordered(sd, 0):
        _raises(other, "layers.10.weight")


def test_branching_heads_are_refused():
    sd = {"body.0.weight": _t(16, 4), "mu.weight": _t(8, 16), "logvar.weight": _t(8, 16)}
    _raises(sd, "logvar", "mu", "branch")
    square = {"body.0.weight": _t(16, 4), "mu.weight": _t(16, 16), "logvar.weight": _t(16, 16)}
    _raises(square, "mu.weight", "logvar.weight")


def test_order_the_names_do_not_fix_is_refused():
    _raises({"encoder.weight": _t(4, 10), "decoder.weight": _t(10, 4)}, "encoder.weight", "decoder.weight", "order")


def test_weights_on_two_levels_of_one_module_are_refused():
    _raises({"fc.weight": _t(8, 4), "fc.sub.weight": _t(2, 8)}, "fc.weight")


@pytest.mark.parametrize(
    "sd, key",
    [
        ({"layers.0.weight": _t(8, 4), "layers.1.weight": _t(8), "layers.2.weight": _t(2, 8)}, "layers.1.weight"),
        ({"fc1.weight": _t(8, 4), **_bn("bn1", 8), "fc2.weight": _t(2, 8)}, "bn1.weight"),
        ({"fc.weight": _t(8, 4), "fc.weight_g": _t(8, 1)}, "fc.weight_g"),
        ({"fc.weight": _t(8, 4), "fc.bias": _t(5)}, "fc.bias"),
        ({"conv1.weight": _t(8, 3, 3, 3), **_bn("bn1", 6), "fc.weight": _t(2, 8)}, "bn1.weight"),
        ({"0.weight": _t(4, 8), "1.weight": _t(8, 4, 3, 3)}, "1.weight"),
        ({"0.weight": _t(4, 8, 3), "1.weight": _t(8, 4, 3, 3)}, "1.weight"),
    ],
)
def test_entries_that_cannot_be_placed_are_named(sd, key):
    _raises(sd, key)


def test_norm_without_running_stats_is_refused():
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 2))
    _raises(model.state_dict(), "1.weight", "norm")


@pytest.mark.parametrize("sd", [{}, {"fc.bias": _t(3)}, _bn("bn", 4)])
def test_nothing_to_infer(sd):
    _raises(sd)


def test_unknown_activation_and_non_tensor_values():
    _raises({"fc.weight": _t(3, 2)}, "gelu", activation="gelu")
    _raises({"fc.weight": _t(3, 2), "epoch": 3}, "epoch")


@pytest.mark.parametrize("slopes", [6, 1], ids=["per-channel", "shared"])
def test_prelu_nets_are_refused_for_the_real_reason(slopes):
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.PReLU(slopes), nn.Conv2d(6, 4, 1))
    msg = _raises(model.state_dict(), "1.weight", "PReLU slope")
    assert "norm" not in msg.split("PReLU")[0] and "transformers" not in msg


def test_lstm_state_dicts_name_the_recurrent_layer():
    msg = _raises(nn.LSTM(4, 6).state_dict(), "_hh_l0", "recurrent layer")
    assert "transformers" not in msg


def test_layernorm_still_named_as_a_norm():
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    msg = _raises(model.state_dict(), "1.weight", "LayerNorm")
    assert "transformers" not in msg
