"""Equivariance, invariance and negative controls of every layer on parsed and random specs."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings

from weightspace.errors import SpecError
from weightspace.nn import HNPLinear, HNPPool, NPLinear, NPPool, UNFLinear, UNFPool, metanet_spec
from weightspace.nn.chain import np_spec
from weightspace.testing import assert_equivariant, assert_invariant, assert_negative_control
from weightspace.testing.strategies import specs

from .specs import CHAINS, NOT_CHAINS, PARSED, parsed

C_IN, C_OUT = 2, 3
BATCH = dict(batch_dims=2, batch_shape=(2, C_IN))


def _layers(kind: str):
    return {
        "unf": lambda s: UNFLinear(s, C_IN, C_OUT),
        "np": lambda s: NPLinear(s, C_IN, C_OUT),
        "np-io": lambda s: NPLinear(s, C_IN, C_OUT, io_embed=True),
        "hnp": lambda s: HNPLinear(s, C_IN, C_OUT),
    }[kind]


def _pools(kind: str):
    return {"unf": UNFPool, "np": NPPool, "hnp": HNPPool}[kind]


def _with_bias(layer):
    """Non-zero biases, so that the checks cover them too."""
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if "bias" in name:
                p.normal_()
    return layer


CASES = [(k, a) for a in PARSED for k in ("unf",)] + [(k, a) for a in CHAINS for k in ("np", "np-io", "hnp")]


@pytest.mark.parametrize("kind, arch", CASES)
def test_linear_equivariant_float64(kind, arch):
    spec = parsed(arch)
    layer = _with_bias(_layers(kind)(spec)).double()
    assert_equivariant(layer, spec, **BATCH)
    assert_negative_control(layer, spec, spec, **BATCH)


@pytest.mark.parametrize("kind, arch", CASES)
def test_linear_equivariant_float32_relative(kind, arch):
    spec = parsed(arch)
    layer = _layers(kind)(spec)
    worst = assert_equivariant(layer, spec, dtype=torch.float32, rtol=1e-5, atol=1e-6, **BATCH)
    assert worst <= 1e-5


POOLS = [("unf", a) for a in PARSED] + [(k, a) for a in CHAINS for k in ("np", "hnp")]


@pytest.mark.parametrize("kind, arch", POOLS)
def test_pool_invariant(kind, arch):
    spec = parsed(arch)
    pool = _pools(kind)(spec, C_IN)
    assert_invariant(pool, spec, **BATCH)
    out = pool({k: torch.randn(2, C_IN, *e.shape) for k, e in spec.entries.items()})
    assert out.shape == (2, pool.out_features)


@pytest.mark.parametrize("arch", CHAINS)
def test_np_layers_commute_with_the_larger_np_group(arch):
    spec = parsed(arch)
    big = np_spec(spec)
    assert_equivariant(_with_bias(NPLinear(spec, C_IN, C_OUT)).double(), big, **BATCH)
    assert_invariant(NPPool(spec, C_IN), big, **BATCH)
    # input/output embeddings break exactly that extra symmetry; HNP never had it
    for layer in (_with_bias(NPLinear(spec, C_IN, C_OUT, io_embed=True)), _with_bias(HNPLinear(spec, C_IN, C_OUT))):
        with pytest.raises(AssertionError, match="np.input|np.output"):
            assert_equivariant(layer.double(), big, **BATCH)


def test_gru_repeated_group_unf():
    spec = parsed_gru()
    layer = _with_bias(UNFLinear(spec, C_IN, C_OUT)).double()
    assert_equivariant(layer, spec, **BATCH)
    assert_negative_control(layer, spec, spec, **BATCH)
    assert_invariant(UNFPool(spec, C_IN), spec, **BATCH)


def parsed_gru():
    return parsed("gru")


@pytest.mark.parametrize("arch", NOT_CHAINS)
@pytest.mark.parametrize("cls", [NPLinear, HNPLinear])
def test_nfn_layers_refuse_non_chains(cls, arch):
    with pytest.raises(SpecError, match="UNFLinear"):
        cls(parsed(arch), 1, 1)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs(max_size=4))
def test_unf_random_specs(spec):
    spec = metanet_spec(spec, include_buffers=True)
    layer = _with_bias(UNFLinear(spec, C_IN, C_OUT)).double()
    assert_equivariant(layer, spec, **BATCH)
    assert_invariant(UNFPool(spec, C_IN), spec, **BATCH)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs(kinds=("mlp", "cnn"), max_size=4))
def test_nfn_random_chain_specs(spec):
    spec = metanet_spec(spec, include_buffers=True)
    for layer in (NPLinear(spec, C_IN, C_OUT, io_embed=True), HNPLinear(spec, C_IN, C_OUT)):
        assert_equivariant(_with_bias(layer).double(), spec, **BATCH)


def test_unf_options_stay_equivariant_and_shrink():
    spec = parsed("transformer")
    full = UNFLinear(spec, 1, 1)
    capped = UNFLinear(spec, 1, 1, max_shared=1).double()
    assert len(capped.basis) < len(full.basis)
    assert sum(p.numel() for p in capped.parameters()) < sum(p.numel() for p in full.parameters())
    assert_equivariant(capped, spec, batch_dims=2, batch_shape=(2, 1))


def test_layer_rejects_wrong_channels_naming_the_key():
    spec = parsed("siren")
    layer = UNFLinear(spec, 2, 2)
    x = {k: torch.randn(2, 3, *e.shape) for k, e in spec.entries.items()}
    with pytest.raises(Exception, match="0.weight"):
        layer(x)
