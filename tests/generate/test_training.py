"""A tiny training run lowers the diffusion loss; generation from held-out inits lands near
the true target; a generated checkpoint loads into the classifier net and runs; samples are
deterministic and survive a save/load round trip."""
from __future__ import annotations

import pytest
import torch

from weightspace.generate import generate, load_generator, save_generator

from .conftest import CFG, shift, toy_pairs

DENOISERS = ("equivariant", "transformer")
FACTOR = 10.0  # measured: about 900x (equivariant) and 35x (transformer) at 300 steps


@pytest.mark.parametrize("name", DENOISERS)
def test_training_lowers_the_diffusion_loss(trained, name):
    before, after = trained.losses_before[name], trained.losses_after[name]
    # both models start by predicting a zero update: the normalized update has unit variance
    assert 0.8 < before < 1.2
    assert after < before / FACTOR, (before, after)
    hist = trained.histories[name]
    assert sum(hist[-30:]) / 30 < sum(hist[:30]) / 30 / FACTOR


def _distance(a: dict, b: dict) -> float:
    return float(sum(((a[k] - b[k]) ** 2).sum() for k in a) ** 0.5)


@pytest.mark.parametrize("name", DENOISERS)
def test_generation_lands_closer_to_the_true_target_than_the_start(trained, name):
    model, spec = trained.models[name], trained.spec
    held = toy_pairs(spec, 8, seed=7)
    a = shift(spec)
    ratios = []
    for i in range(len(held)):
        start = {k: v[i] for k, v in held.start.items()}
        ms, mt = float(held.start_metric[i]), float(held.target_metric[i])
        truth = {k: start[k] + (ms - mt) * a[k] for k in start}
        new = generate(model, start, mt, start_metric=ms, steps=10, seed=i)
        ratios.append(_distance(new, truth) / _distance(start, truth))
    assert max(ratios) < 0.5, ratios


@pytest.mark.parametrize("name", DENOISERS)
def test_generated_checkpoint_loads_into_the_classifier_and_runs(trained, name):
    start = {k: v[0] for k, v in toy_pairs(trained.spec, 1, seed=3).start.items()}
    new = generate(trained.models[name], start, 0.2, start_metric=1.5, steps=5)
    net = CFG.module()
    net.load_state_dict(new, strict=True)
    out = net(torch.randn(5, *CFG.in_shape))
    assert out.shape == (5, CFG.classes) and torch.isfinite(out).all()
    assert all(new[k].dtype == start[k].dtype and new[k].shape == start[k].shape for k in start)


@pytest.mark.parametrize("name", DENOISERS)
def test_save_load_round_trip_gives_identical_samples(trained, name, tmp_path):
    model = trained.models[name]
    path = save_generator(tmp_path / "gen.safetensors", model)
    loaded = load_generator(path)
    assert loaded.config() == model.config()
    start = {k: v[0] for k, v in toy_pairs(trained.spec, 1, seed=4).start.items()}
    a = generate(model, start, 0.3, start_metric=1.2, steps=8, seed=5, iterations=2)
    b = generate(loaded, start, 0.3, start_metric=1.2, steps=8, seed=5, iterations=2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = generate(loaded, start, 0.3, start_metric=1.2, steps=8, seed=6, iterations=2)
    assert any(not torch.equal(a[k], c[k]) for k in a)
