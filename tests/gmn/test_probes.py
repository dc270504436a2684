"""Probe features: the activations read from the graph batch are the network's own
(checked against hooks on the real module), and a model using them stays invariant."""
from __future__ import annotations

import copy

import pytest
import torch

from tests.gmn.cases import as_batch, classifier, readout_fn, structure_of
from tests.graph.cases import traced
from weightspace.errors import GMNError
from weightspace.graph.build import flatten_values
from weightspace.nn.gmn import ProbeFeatures
from weightspace.testing import assert_invariant, assert_negative_control, random_weights

INPUT_SHAPES = {"mlp": (5,), "siren": (2,), "cnn_bn": (3, 8, 8)}


def _probes(name: str, hidden: int = 16) -> ProbeFeatures:
    model, _, _ = traced(name)
    torch.manual_seed(1)
    return ProbeFeatures(model, structure_of(name)[1], INPUT_SHAPES[name], hidden, num_probes=6).double()


@pytest.mark.parametrize("name", sorted(INPUT_SHAPES))
def test_probe_activations_are_the_networks_own(name):
    model, spec, _ = traced(name)
    _, structure = structure_of(name)
    probes = _probes(name)
    stacked = random_weights(spec, torch.Generator().manual_seed(2), (3,), torch.float64)
    acts = probes.activations(flatten_values(structure, stacked, batch_dims=1))
    modules = dict(model.named_modules())
    for b in range(3):
        net = copy.deepcopy(model).double().eval()
        net.load_state_dict({k: v[b] for k, v in stacked.items()})
        seen = {}
        nets = dict(net.named_modules())
        hooks = [nets[u.module].register_forward_hook(lambda m, a, y, u=u: seen.__setitem__(u.module, y)) for u in probes.units]
        with torch.no_grad():
            net(probes.probes.detach())
        for h in hooks:
            h.remove()
        for u in probes.units:
            y = seen[u.module].movedim(u.channel_dim, -1)
            expected = y.reshape(y.shape[0], -1, y.shape[-1]).mean(1).T
            torch.testing.assert_close(acts[b, u.nodes], expected, rtol=1e-10, atol=1e-12)
    assert {u.module for u in probes.units} == {n for n, m in modules.items() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))}


@pytest.mark.parametrize("name", sorted(INPUT_SHAPES))
def test_classifier_with_probes_is_invariant(name):
    spec, structure = structure_of(name)
    fn = readout_fn(classifier(structure, "mpnn", probes=[_probes(name)]), structure)
    assert_invariant(fn, spec, rtol=1e-5, atol=1e-9, n_trials=2)
    assert_negative_control(fn, spec)


def test_probes_skip_graphs_of_other_architectures():
    probes = _probes("siren")
    spec, structure = structure_of("mlp")
    g = as_batch(structure, random_weights(spec, torch.Generator().manual_seed(0), (2,), torch.float64))
    assert torch.equal(probes(g), torch.zeros(g.num_nodes, 16, dtype=torch.float64))


def test_probes_need_units_in_the_graph():
    with pytest.raises(GMNError, match="no Linear/Conv module"):
        ProbeFeatures(torch.nn.Sequential(torch.nn.ReLU()), structure_of("siren")[1], (2,), 8)


@pytest.mark.parametrize("name", sorted(INPUT_SHAPES))
def test_probe_readings_are_the_network_outputs_and_invariant(name):
    """The readings are the network's own outputs on the probes (the only units no
    permutation moves here), and a classifier reading them stays invariant."""
    model, spec, _ = traced(name)
    _, structure = structure_of(name)
    probes = _probes(name)
    stacked = random_weights(spec, torch.Generator().manual_seed(3), (2,), torch.float64)
    _, readings = probes.read(as_batch(structure, stacked))
    assert readings.shape == (2, probes.reading_size) and probes.reading_size > 0
    for b in range(2):
        net = copy.deepcopy(model).double().eval()
        net.load_state_dict({k: v[b] for k, v in stacked.items()})
        with torch.no_grad():
            out = net(probes.probes.detach())
        torch.testing.assert_close(readings[b], out.reshape(out.shape[0], -1).T.flatten(), rtol=1e-10, atol=1e-12)
    fn = readout_fn(classifier(structure, "mpnn", probes=[_probes(name)], read_probes=True), structure)
    assert_invariant(fn, spec, rtol=1e-5, atol=1e-9, n_trials=2)
    assert_negative_control(fn, spec)


def test_probe_init_and_readings_errors():
    model, _, _ = traced("siren")
    structure = structure_of("siren")[1]
    start = torch.linspace(-1, 1, 8).reshape(4, 2)
    assert torch.equal(ProbeFeatures(model, structure, (2,), 8, num_probes=4, init=start).probes.detach(), start)
    with pytest.raises(GMNError, match="init probes have shape"):
        ProbeFeatures(model, structure, (2,), 8, num_probes=5, init=start)
    with pytest.raises(GMNError, match="read_probes needs probe features"):
        classifier(structure, "mpnn", read_probes=True)
