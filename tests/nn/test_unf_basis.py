"""The UNF basis generator: hand-counted sizes, and completeness against a brute-force commutant."""
import pytest
import torch

from weightspace.nn import UNFBasis, UNFLinear
from weightspace.nn.unf_basis import bell, set_partitions
from weightspace.spec import Entry, Factor, Group, WeightSpec
from weightspace.testing import random_attention_spec, random_cnn_spec, random_mlp_spec

from .brute import commutant_dimension, realized_maps


def recurrent_spec(n: int) -> WeightSpec:
    """W (h, h) and b (h): a recurrent cell's weight space, one group acting twice on W."""
    h = (Factor("h", n),)
    return WeightSpec({"W": Entry("W", (n, n), (h, h)), "b": Entry("b", (n,), (h,))}, {"h": Group("h", n)})


@pytest.mark.parametrize("n", range(0, 7))
def test_set_partitions_are_bell_many_and_distinct(n):
    parts = list(set_partitions(list(range(n))))
    assert len(parts) == bell(n)
    canon = {tuple(sorted(tuple(sorted(b)) for b in p)) for p in parts}
    assert len(canon) == len(parts)
    assert all(sorted(x for b in p for x in b) == list(range(n)) for p in parts)


def test_hand_count_mlp_2_3_1():
    # h1 (size 3) acts on W0 rows, b0, W1 columns; b1 is fixed.
    # both sides carry h1: {same index, different index} = 2 terms, 9 pairs -> 18;
    # one side carries h1: pool or broadcast = 1 term, 6 pairs -> 6; b1 -> b1: 1. Total 25.
    basis = UNFBasis(random_mlp_spec([2, 3, 1]))
    assert len(basis) == 25
    assert basis.count("layers.0.weight", "layers.1.weight") == 2
    assert basis.count("layers.0.bias", "layers.1.bias") == 1
    assert basis.count("layers.1.bias", "layers.1.bias") == 1
    # coefficients: fixed sizes F = 2 (W0: 2 inputs), 1, 1, 1 -> 2·(2+1+1)² + 2·(2+1+1) + 1 = 41
    assert basis.num_coefficients(1, 1) == 41
    assert basis.num_coefficients(2, 3) == 41 * 6


@pytest.mark.parametrize("n, ww, wb, bb", [(5, 15, 5, 2), (4, 15, 5, 2), (3, 14, 5, 2), (2, 8, 4, 2), (1, 1, 1, 1)])
def test_hand_count_recurrent(n, ww, wb, bb):
    # W -> W: 4 indices of one group: Bell(4) = 15 partitions, of which S(4,4) = 1 has 4 blocks and
    # S(4,3) = 6 have 3, so n = 3 keeps 14, n = 2 keeps 1 + 7 = 8, n = 1 keeps 1.
    # W -> b, b -> W: Bell(3) = 5 (n = 2 drops the one 3-block partition); b -> b: Bell(2) = 2.
    basis = UNFBasis(recurrent_spec(n))
    assert basis.count("W", "W") == ww
    assert basis.count("W", "b") == basis.count("b", "W") == wb
    assert basis.count("b", "b") == bb
    assert basis.spanning_count("W", "W") == 15
    assert len(UNFBasis(recurrent_spec(n), dedupe=False)) == 15 + 5 + 5 + 2


SMALL_SPECS = {
    "mlp": lambda: random_mlp_spec([2, 3, 2, 1]),
    "mlp-width1": lambda: random_mlp_spec([2, 1, 3, 2]),
    "cnn-flatten": lambda: random_cnn_spec([1, 2, 3], 1, 2, 2),
    "attention": lambda: random_attention_spec(2, 2, 2, bias=False),
    "recurrent-2": lambda: recurrent_spec(2),
    "recurrent-3": lambda: recurrent_spec(3),
}


@pytest.mark.parametrize("name", sorted(SMALL_SPECS))
def test_basis_is_exactly_the_commutant(name):
    """Deduped basis size = dim of all equivariant maps, and the layer realizes all of them."""
    spec = SMALL_SPECS[name]()
    dim = commutant_dimension(spec)
    basis = UNFBasis(spec)
    assert basis.num_coefficients(1, 1) == dim
    layer = UNFLinear(spec, 1, 1, bias=False).double()
    jac = realized_maps(layer, spec)
    assert jac.shape[0] == dim
    assert int(torch.linalg.matrix_rank(jac)) == dim


@pytest.mark.parametrize("name", ["recurrent-2", "mlp-width1"])
def test_spanning_set_without_dedupe_is_dependent_but_complete(name):
    spec = SMALL_SPECS[name]()
    dim = commutant_dimension(spec)
    full = UNFLinear(spec, 1, 1, bias=False, dedupe=False).double()
    assert full.basis.num_coefficients(1, 1) > dim
    assert int(torch.linalg.matrix_rank(realized_maps(full, spec))) == dim


def test_caps_drop_terms():
    spec = recurrent_spec(4)
    full = UNFBasis(spec)
    capped = UNFBasis(spec, max_shared=1)
    assert all(t.shared <= 1 for t in capped.terms)
    assert 0 < len(capped) < len(full)
    no_cross = UNFBasis(spec, term_filter=lambda t: t.in_key == t.out_key)
    assert set(no_cross.counts()) == {("W", "W"), ("b", "b")}
