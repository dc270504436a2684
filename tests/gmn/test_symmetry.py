"""Invariance of the readout, equivariance of per-edge outputs mapped back to state
dicts and of per-node outputs, under random spec elements, for both layer kinds on
MLP, SIREN, CNN+BN, residual and transformer-block graphs; negative controls show
that each check can fail."""
from __future__ import annotations

import pytest
import torch

from tests.gmn.cases import KINDS, SYMMETRY_CASES, classifier, edge_fn, equivariant, node_fn, readout_fn, structure_of
from weightspace.nn.gmn.heads import node_space_spec
from weightspace.testing import assert_equivariant, assert_invariant, assert_negative_control

TOL = dict(rtol=1e-5, atol=1e-9, n_trials=2)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", SYMMETRY_CASES)
def test_readout_is_invariant(name, kind):
    spec, structure = structure_of(name)
    fn = readout_fn(classifier(structure, kind), structure)
    assert_invariant(fn, spec, **TOL)
    assert assert_negative_control(fn, spec) > 1e-6


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", SYMMETRY_CASES)
def test_edge_outputs_are_equivariant_as_state_dicts(name, kind):
    spec, structure = structure_of(name)
    fn = edge_fn(equivariant(structure, kind), structure)
    assert_equivariant(fn, spec, **TOL)
    assert assert_negative_control(fn, spec, spec) > 1e-6


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", SYMMETRY_CASES)
def test_node_outputs_are_equivariant(name, kind):
    spec, structure = structure_of(name)
    fn = node_fn(equivariant(structure, kind, node_out=2), structure)
    assert_equivariant(fn, spec, node_space_spec(structure, 2), **TOL)


def test_misplaced_bias_outputs_are_caught():
    """The bias/offset class of bugs: per-edge outputs written one layer off (bias of layer
    l read from the units of layer l+1) are not equivariant, and the check says so."""
    spec, structure = structure_of("mlp")
    model = equivariant(structure, "mpnn")
    good = edge_fn(model, structure)
    assert_equivariant(good, spec, **TOL)
    biases = [k for k in spec.entries if k.endswith("bias")]
    first, second = biases[0], biases[1]
    n = min(spec.entries[first].shape[0], spec.entries[second].shape[0])

    def shifted(sd):
        out = dict(good(sd))
        out[first] = torch.cat([out[second][:, :n], out[first][:, n:]], dim=1)
        return out

    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(shifted, spec, **TOL)
