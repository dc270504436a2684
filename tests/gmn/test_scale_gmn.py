"""ScaleGMN: invariance of the classifier and equivariance of the hidden node and edge features
to random permutations AND the spec's declared sign flips (SIREN) / positive scalings (ReLU MLP,
ReLU CNN), float64; negative controls: the permutation-only MPNN passes the permutation check and
fails the sign/scale one, and broken variants of the layer fail."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.gmn.scale_cases import ARCHS, KIND, TOL, as_batch, classifier, feature_spec, features, spec_and_structure
from weightspace.errors import ConfigError
from weightspace.graph import graph_structure
from weightspace.nn.gmn import GMNClassifier, ScaleGMNClassifier, edge_widths
from weightspace.nn.gmn import scale_mpnn
from weightspace.nn.gmn.charges import charges_of
from weightspace.testing import assert_equivariant, assert_invariant, assert_negative_control, random_cnn_spec


def _readout(model, structure):
    return lambda sd: model(as_batch(structure, sd))


@pytest.mark.parametrize("arch", ARCHS)
def test_charges_follow_the_extra_action(arch):
    spec, structure = spec_and_structure(arch)
    q = charges_of(structure)
    hidden = sum(g.size for g in spec.groups.values())
    mixed = sum(sp.size for sp in structure.spaces if sp.type == "mixed")  # (channel, pixel) nodes of a flatten
    charged = q.sign if KIND[arch] == "sign" else q.scale
    assert int(charged.sum()) == hidden + mixed
    assert not bool((q.scale if KIND[arch] == "sign" else q.sign).any())
    tail, head = q.oriented
    assert torch.equal(torch.sort(q.oriented, 0).values, torch.sort(structure.edge_index, 0).values)
    assert bool((q.edge_sign | q.edge_scale)[structure.edge_width > 0].sum() > 0)


@pytest.mark.parametrize("arch", ARCHS)
def test_classifier_is_invariant_to_permutations_and_extra_symmetries(arch):
    spec, structure = spec_and_structure(arch)
    fn = _readout(classifier(structure), structure)
    assert_invariant(fn, spec, extra=True, **TOL)
    assert assert_negative_control(fn, spec) > 1e-6


@pytest.mark.parametrize("arch", ARCHS)
def test_hidden_features_are_equivariant(arch):
    spec, structure = spec_and_structure(arch)
    fn = features(classifier(structure).trunk, structure)
    assert_equivariant(fn, spec, feature_spec(structure, 8), extra=True, **TOL)


@pytest.mark.parametrize("arch", ARCHS)
def test_permutation_only_mpnn_fails_the_extra_check(arch):
    spec, structure = spec_and_structure(arch)
    torch.manual_seed(0)
    base = GMNClassifier(3, hidden=8, layers=2, edge_widths=edge_widths(structure)).double()
    fn = _readout(base, structure)
    assert_invariant(fn, spec, **TOL)
    with pytest.raises(AssertionError, match="not invariant"):
        assert_invariant(fn, spec, extra=True, **TOL)


def test_invariants_without_the_sign_symmetrization_fail(monkeypatch):
    """Broken on purpose: ρ as φ(u) + φ(u) (not even), so the messages are not sign-equivariant."""
    spec, structure = spec_and_structure("siren")
    fn = _readout(classifier(structure), structure)
    assert_invariant(fn, spec, extra=True, **TOL)
    real = scale_mpnn.symmetrize
    monkeypatch.setattr(scale_mpnn, "symmetrize", lambda z, norm, sign, scale, bias: real(z, norm, sign & False,
                                                                                          scale, bias))
    with pytest.raises(AssertionError, match="not invariant"):
        assert_invariant(fn, spec, extra=True, **TOL)


@pytest.mark.parametrize("arch", ["siren", "mlp"])
def test_edge_encoder_with_a_bias_fails(arch):
    """Broken on purpose: an affine (not odd, not homogeneous) lift of the weights."""
    spec, structure = spec_and_structure(arch)
    model = classifier(structure)
    torch.manual_seed(1)
    model.trunk.edges.lift["1"] = nn.Linear(1, 8).double()
    fn = _readout(model, structure)
    assert_invariant(fn, spec, **TOL)
    with pytest.raises(AssertionError, match="not invariant"):
        assert_invariant(fn, spec, extra=True, **TOL)


def test_float32_is_invariant_to_tolerance():
    spec, _ = spec_and_structure("siren")
    structure = graph_structure(spec)
    fn = _readout(classifier(structure).float(), structure)
    assert_invariant(fn, spec, extra=True, dtype=torch.float32, rtol=1e-4, atol=1e-5, n_trials=2)


def test_batchnorm_running_statistics_are_refused():
    """BatchNorm's affine parameters carry the scale, its running statistics do not: no q_out / q_in form."""
    spec = random_cnn_spec([3, 4, 5], 3, 4, 2, activation="relu", batchnorm=True)
    with pytest.raises(ConfigError, match="running statistics"):
        charges_of(graph_structure(spec))


def test_mixed_architecture_batch_equals_separate_graphs():
    """A PyG batch of a SIREN and a ReLU MLP graph: each graph's logits as when it is alone."""
    from weightspace.graph import build_graph
    from weightspace.graph.pyg import collate
    from weightspace.testing import random_weights

    graphs = []
    for arch in ("siren", "mlp"):
        spec, structure = spec_and_structure(arch)
        sd = random_weights(spec, torch.Generator().manual_seed(0), (), torch.float64)
        graphs.append(build_graph(spec, sd, structure=structure))
    widths = sorted(set(edge_widths(graphs[0].structure)) | set(edge_widths(graphs[1].structure)))
    torch.manual_seed(0)
    model = ScaleGMNClassifier(3, hidden=8, layers=2, edge_widths=widths).double()
    together = model(collate(graphs))
    alone = torch.cat([model(collate([g])) for g in graphs])
    torch.testing.assert_close(together, alone, rtol=1e-10, atol=1e-12)
