"""`generate`: prompting as optimization — one checkpoint in, one with the prompted metric out.

G.pt's use (Peebles et al. 2022): from a start checkpoint (an init, say) and a
prompted metric, sample the target checkpoint. Iterated prompting feeds each output
back as the next start, its start metric the previous prompt.
"""
from __future__ import annotations

from typing import Mapping

import torch

from ..errors import ConfigError
from .diffusion import DEFAULT_STEPS, CheckpointDiffusion


def generate(
    model: CheckpointDiffusion,
    start_state_dict: Mapping[str, torch.Tensor],
    target_metric: float,
    *,
    start_metric: float | None = None,
    iterations: int = 1,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """A checkpoint (the start's keys, shapes and dtype) sampled for metric `target_metric`.

    Args:
        model: a trained generator; its spec must match `start_state_dict` key for key
            (KeyMismatchError / ShapeMismatchError naming the key otherwise).
        start_state_dict: one checkpoint `key -> tensor`.
        target_metric: the prompted metric (the scalar the generator was trained on).
        start_metric: the start's metric; default the mean metric of the training
            pairs' initial checkpoints (`PairNormalizer.init_metric`).
        iterations: prompt this many times, each output the next start.
        steps: DDIM steps per prompt.
        seed: the sampler's noise (the same seed gives the same checkpoint).
    """
    if iterations < 1:
        raise ConfigError(f"iterations must be >= 1, got {iterations}")
    model.spec.check(start_state_dict, where="generate: the start checkpoint")
    if start_metric is None:
        start_metric = float(model.normalizer.init_metric)
    device = model.alpha_bar.device
    x = {k: start_state_dict[k].unsqueeze(0) for k in model.spec.entries}
    gen = torch.Generator(device=device).manual_seed(seed)
    metric = float(start_metric)
    for _ in range(iterations):
        x = model.sample(x, metric, float(target_metric), steps=steps, generator=gen)
        metric = float(target_metric)
    return {k: x[k][0].to(start_state_dict[k].device, start_state_dict[k].dtype) for k in model.spec.entries}
