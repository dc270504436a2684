"""Interpolation, merging (two and many models), REPAIR and STE matching."""
from __future__ import annotations

import warnings

import torch

import weightspace as ws
from weightspace import align
from weightspace.align.weight_matching import alignment_objective
from weightspace.align.repair import repair_layers, unit_stats

from .digits import batches, digits, trained_pair
from .models import noisy, parsed, snapshot, state, unchanged


def test_interpolate_endpoints_midpoint_and_ties():
    model, _, spec = parsed("hf_gpt2")
    a = state(model)
    b = noisy(a, 1.0, seed=2)
    a_copy, b_copy = snapshot(a), snapshot(b)
    for alpha, want in ((0.0, a), (1.0, b)):
        out = align.interpolate(a, b, alpha)
        assert all(torch.allclose(out[k], want[k].to(out[k].dtype)) for k in a)
    mid = align.interpolate(a, b, 0.5)
    key = next(k for k in a if a[k].is_floating_point())
    assert torch.allclose(mid[key], (a[key] + b[key]) / 2)
    tied = [k for k, v in spec.aliases.items()]
    assert tied and all(mid[k] is mid[spec.aliases[k]] for k in tied)
    assert unchanged(a, a_copy) and unchanged(b, b_copy)


def test_merge_many_recovers_a_common_frame():
    model, _, spec = parsed("resnet_blocks")
    a = state(model)
    gen = torch.Generator().manual_seed(4)
    models = [noisy(spec.apply(a, spec.random_element(gen)), 0.05, seed=i) for i in range(3)]
    copies = [snapshot(m) for m in models]
    result = align.merge_many(spec, models)
    assert result.converged
    for sd, g in zip(models, result.elements):
        moved = spec.apply(sd, g)
        assert alignment_objective(spec, result.state_dict, moved) > 0.99 * alignment_objective(
            spec, result.state_dict, result.state_dict
        )
    frame = align.weight_matching(spec, a, result.state_dict).element
    merged = spec.apply(result.state_dict, frame)
    keys = [k for k in a if a[k].is_floating_point()]
    error = sum(float((merged[k] - a[k]).pow(2).sum()) for k in keys) ** 0.5
    assert error < 0.05 * sum(float(a[k].pow(2).sum()) for k in keys) ** 0.5  # noise 0.05·std, averaged
    assert all(unchanged(m, c) for m, c in zip(models, copies))


def test_merge_returns_aligned_interpolation():
    from weightspace.merge import merge_models

    model, _, spec = parsed("mlp")
    a = state(model)
    b = spec.apply(a, spec.random_element(torch.Generator().manual_seed(9)))
    merged = merge_models([a, b], "linear", spec=spec, align="weight").state_dict
    assert all(torch.allclose(merged[k], a[k]) for k in a)


def _digits_mlp():
    a, b = trained_pair("mlp")
    x, y, xt, yt = digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        spec = ws.parse(a, (x[:60],))
    return a, b, spec, batches(x, y, 60), batches(xt, yt, 199)


def test_repair_restores_interpolated_unit_statistics():
    a, b, spec, train, _ = _digits_mlp()
    sd_a, sd_b = state(a), state(b)
    sd_b = spec.apply(sd_b, align.weight_matching(spec, sd_a, sd_b).element)
    inputs = [(x,) for x, _ in train]
    layers = repair_layers(a, spec)
    assert layers == ["0", "2"]
    stats_a, stats_b = unit_stats(a, sd_a, layers, inputs), unit_stats(a, sd_b, layers, inputs)
    plain = unit_stats(a, align.interpolate(sd_a, sd_b, 0.5), layers, inputs)
    fixed = unit_stats(a, align.repair(a, spec, sd_a, sd_b, 0.5, train), layers, inputs)
    for name in layers:
        target = (stats_a[name].std + stats_b[name].std) / 2
        assert (plain[name].std - target).abs().max() > 1e-3  # variance collapse to repair
        assert torch.allclose(fixed[name].std, target, rtol=1e-3, atol=1e-4)
        assert torch.allclose(fixed[name].mean, (stats_a[name].mean + stats_b[name].mean) / 2, atol=1e-4)


def test_ste_matching_keeps_the_barrier_low():
    a, b, spec, train, test = _digits_mlp()
    sd_a, sd_b = state(a), state(b)
    result = align.ste_matching(a, spec, sd_a, sd_b, train, epochs=1)
    assert len(result.losses) == len(train)
    naive = align.barrier(a, sd_a, sd_b, test, alphas=[0, 0.5, 1])
    ste = align.barrier(a, sd_a, spec.apply(sd_b, result.element), test, alphas=[0, 0.5, 1])
    # measured: naive ≈ 0.53, STE ≈ 0.008
    assert ste.barrier <= naive.barrier / 4
