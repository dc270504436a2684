"""Defaults and named errors of `CheckpointDiffusion` and `generate`."""
from __future__ import annotations

import pytest
import torch

from weightspace.errors import ConfigError, KeyMismatchError, ShapeMismatchError
from weightspace.generate import CheckpointDiffusion, generate
from weightspace.generate.diffusion import parameter_count
from weightspace.testing import random_cnn_spec

from .conftest import toy_pairs


@pytest.mark.parametrize("which", ["toy", "cnn"])
def test_default_denoisers_have_comparable_parameter_counts(trained, which):
    spec = trained.spec if which == "toy" else random_cnn_spec([1, 4, 4], kernel=3, flatten_hw=4, classes=3)
    eq = parameter_count(CheckpointDiffusion(spec, "equivariant").denoiser)
    tr = parameter_count(CheckpointDiffusion(spec, "transformer").denoiser)
    assert abs(eq - tr) / tr < 0.15, (eq, tr)


def test_bad_prompts_and_checkpoints_are_named_errors(trained):
    model = trained.models["equivariant"]
    start = {k: v[0] for k, v in toy_pairs(trained.spec, 1, seed=2).start.items()}
    with pytest.raises(ShapeMismatchError, match="'1.weight'"):
        generate(model, dict(start, **{"1.weight": torch.zeros(6, 3)}), 0.1)
    with pytest.raises(KeyMismatchError, match="1.bias"):
        generate(model, {k: v for k, v in start.items() if k != "1.bias"}, 0.1)
    with pytest.raises(ConfigError, match="iterations"):
        generate(model, start, 0.1, iterations=0)
    with pytest.raises(ConfigError, match="steps"):
        generate(model, start, 0.1, steps=model.timesteps + 1)
    batch = {k: v.expand(3, *v.shape) for k, v in start.items()}
    with pytest.raises(ConfigError, match="target_metric"):
        model.sample(batch, 1.0, torch.tensor([0.1, 0.2]))
    with pytest.raises(ConfigError, match="denoiser"):
        CheckpointDiffusion(trained.spec, "unet")
    with pytest.raises(ConfigError, match="fit_normalizer"):
        CheckpointDiffusion(trained.spec, "transformer", hidden=8, layers=1, heads=2, chunk=8).sample(batch, 1.0, 0.5)


def test_default_start_metric_is_the_mean_metric_at_init(trained):
    # the toy pairs carry no start_step: every start counts as an init
    assert float(trained.models["equivariant"].normalizer.init_metric) == pytest.approx(
        float(trained.pairs.start_metric.mean()), rel=1e-6
    )
