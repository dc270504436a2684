"""UNF vs NFN: the generated basis spans exactly the maps of the hand-written NFN layers.

- NFN-NP commutes with the NP group (input/output neurons permuted too); UNF on
  `np_spec(spec)` must give the same space: same dimension, each fits the other.
- NFN-HNP (= UNF on the true chain spec) is the full commutant of the hidden-neuron
  group (checked against brute force in test_unf_basis). Navon et al.'s DWS layers are
  characterized as that same full space, so they span the same maps; NP is a strict
  subspace of it.
"""
import pytest
import torch

from weightspace.nn import HNPLinear, NPLinear, UNFLinear
from weightspace.nn.chain import np_spec
from weightspace.testing import random_cnn_spec, random_mlp_spec

from .brute import commutant_dimension, design, fit_residual

CHAIN_SPECS = {
    "mlp": lambda: random_mlp_spec([3, 4, 5, 2]),
    "cnn": lambda: random_cnn_spec([2, 2, 3], 2, 2, 2),
}
CHANNELS = {"mlp": 2, "cnn": 1}
NAMES = ["mlp", pytest.param("cnn", marks=pytest.mark.slow)]


def _params(m):
    return sum(p.numel() for p in m.parameters())


def _randomized(layer, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return layer


@pytest.mark.parametrize("name", NAMES)
def test_unf_on_np_spec_spans_nfn_np(name):
    spec, c = CHAIN_SPECS[name](), CHANNELS[name]
    np_layer = _randomized(NPLinear(spec, c, c).double(), 0)
    unf_layer = _randomized(UNFLinear(np_spec(spec), c, c).double(), 1)
    assert _params(np_layer) == _params(unf_layer)
    d_np, d_unf = design(np_layer, spec, c), design(unf_layer, spec, c)
    assert int(torch.linalg.matrix_rank(d_np)) == _params(np_layer)
    assert int(torch.linalg.matrix_rank(d_unf)) == _params(unf_layer)
    assert fit_residual(np_layer, d_unf, spec, c) < 1e-10
    assert fit_residual(unf_layer, d_np, spec, c) < 1e-10


@pytest.mark.parametrize("name", NAMES)
def test_np_is_a_strict_subspace_of_hnp(name):
    spec, c = CHAIN_SPECS[name](), CHANNELS[name]
    np_layer = _randomized(NPLinear(spec, c, c).double(), 2)
    hnp_layer = _randomized(HNPLinear(spec, c, c).double(), 3)
    d_np, d_hnp = design(np_layer, spec, c), design(hnp_layer, spec, c)
    assert fit_residual(np_layer, d_hnp, spec, c) < 1e-10
    assert fit_residual(hnp_layer, d_np, spec, c) > 1e-2
    assert int(torch.linalg.matrix_rank(d_hnp)) > int(torch.linalg.matrix_rank(d_np))


def test_hnp_is_the_full_commutant_like_dws():
    spec = CHAIN_SPECS["mlp"]()
    layer = HNPLinear(spec, 1, 1)
    assert layer.basis.num_coefficients(1, 1) == commutant_dimension(spec)
