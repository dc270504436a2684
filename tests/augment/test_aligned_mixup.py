"""Batched weight matching recovers planted permutations, and aligned mixup of a network
with permuted copies of itself returns the network."""
from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

import weightspace as ws
from weightspace import augment as A
from weightspace import examples
from weightspace.align import weight_matching


@pytest.fixture(scope="module")
def siren():
    torch.manual_seed(0)
    model = examples.siren((2, 16, 16, 1), w0=3.0)
    return model, ws.infer_spec(model.state_dict(), activation="sin")


def _render(model, sd, coords):
    with torch.no_grad():
        return functional_call(model, sd, (coords,)).squeeze(-1)


def _permuted_copies(spec, sd, n, seed):
    g = spec.random_element(torch.Generator().manual_seed(seed), batch_shape=(n,))
    return spec.apply({k: torch.stack([v] * n) for k, v in sd.items()}, g, batch_dims=1)


def test_batched_weight_matching_recovers_planted_permutations(siren):
    model, spec = siren
    sd = {k: v.double() for k, v in model.state_dict().items()}
    others = {k: torch.stack([v] * 6) for k, v in sd.items()}
    planted = _permuted_copies(spec, sd, 6, seed=1)
    g = weight_matching(spec, others, planted, batch_dims=1).element
    back = spec.apply(planted, g, batch_dims=1)
    for k in sd:
        torch.testing.assert_close(back[k], others[k], rtol=0, atol=0)


def test_aligned_mixup_of_permuted_copies_returns_the_network(siren):
    model, spec = siren
    sd = {k: v.double() for k, v in model.state_dict().items()}
    batch = _permuted_copies(spec, sd, 8, seed=2)
    labels = torch.arange(8) % 3
    mixed, soft = A.Mixup(spec, num_classes=3, alpha=1.0, mode="aligned")(batch, labels, torch.Generator().manual_seed(0))
    for k in sd:
        torch.testing.assert_close(mixed[k], batch[k], rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(soft.sum(1), torch.ones(8))
    # without alignment the same mix averages mismatched units: the function changes
    plain, _ = A.Mixup(spec, num_classes=3, alpha=1.0, mode="plain")(batch, labels, torch.Generator().manual_seed(0))
    x = torch.rand(30, 2, dtype=torch.float64) * 2 - 1
    moved = [float((_render(model, {k: v[i] for k, v in plain.items()}, x) - _render(model, sd, x)).abs().max())
             for i in range(8)]
    assert max(moved) > 1e-2
