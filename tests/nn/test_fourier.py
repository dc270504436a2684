"""FourierFeatures: exact values of both parametrizations, channel count, and equivariance
in front of a UNF stack."""
from __future__ import annotations

import math

import torch
from torch import nn

from weightspace.nn import EquivariantNetwork, FourierFeatures, InvariantClassifier
from weightspace.testing import assert_equivariant, assert_invariant, assert_negative_control, random_mlp_spec


def test_values_and_channels():
    enc = FourierFeatures((1.0, 3.0))
    x = {"w": torch.tensor([[[0.5, -1.0]]])}  # (B=1, C=1, 2)
    out = enc(x)["w"]
    assert out.shape == (1, enc.channels(1), 2) == (1, 5, 2)
    expected = torch.tensor([[0.5, -1.0], [math.sin(0.5), math.sin(-1.0)], [math.sin(1.5), math.sin(-3.0)],
                             [math.cos(0.5), math.cos(-1.0)], [math.cos(1.5), math.cos(-3.0)]])
    torch.testing.assert_close(out[0], expected)


def test_equivariant_and_invariant_models_with_fourier_inputs():
    spec = random_mlp_spec([3, 5, 4, 2])
    enc = FourierFeatures()
    body = nn.Sequential(enc, EquivariantNetwork(spec, (8,), in_channels=enc.channels(), out_channels=2, layer="unf")).double()
    assert_equivariant(body, spec, batch_dims=2, batch_shape=(2, 1))
    clf = nn.Sequential(enc, InvariantClassifier(spec, 3, (8, 8), in_channels=enc.channels(), layer="hnp")).double()
    assert_invariant(clf, spec, batch_dims=2, batch_shape=(2, 1))
    assert assert_negative_control(clf, spec, batch_dims=2, batch_shape=(2, 1)) > 1e-6


def test_learnable_frequencies_get_gradients():
    enc = FourierFeatures(learnable=True)
    enc({"w": torch.randn(2, 1, 3, 4)})["w"].sum().backward()
    assert enc.freqs.grad is not None and bool((enc.freqs.grad != 0).any())


def test_gaussian_features_of_kernels():
    """Random features of w values per row: [x, sin(2π x Bᵀ), cos(2π x Bᵀ)], B fixed by the seed."""
    enc = FourierFeatures.gaussian(9, num_freqs=4, scale=2.0, seed=0)
    gen = torch.Generator().manual_seed(9)
    b = torch.randn(4, 9, generator=gen) * 2.0
    x = torch.randn(5, 9)
    angles = 2 * math.pi * x @ b.T
    assert torch.equal(enc.freqs, b) and enc.out_features == 9 + 8
    assert torch.equal(enc(x), torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=1))
    assert "freqs" in enc.state_dict() and "freqs" not in FourierFeatures().state_dict()
