"""The graph rule's fused native forward computes the torch path's output and the reference update.

Every test that runs the kernel shares one build (`graph_native.library` is cached per process;
the build itself is cached on disk). They skip where it cannot be built.
"""
from __future__ import annotations

import warnings

import pytest
import torch

import weightspace.native

from weightspace.lopt import LearnedOptimizer, LearnedRule, graph_native
from weightspace.lopt.features import init_state, raw_features, update_state
from weightspace.lopt.inplace import Workspace, inplace_step
from weightspace.lopt.rule import make_net
from weightspace.testing import random_cnn_spec, random_mlp_spec
from tests.lopt.cases import perturbed

# a CNN (3x3 kernels, member edges of the flatten, a transposed entry order), an MLP whose rows
# are no multiple of 8 (blocks across rows take the lane-by-lane path) and a wide one (long runs)
SPECS = {
    "cnn": lambda: random_cnn_spec([2, 3, 4], 3, 4, 5),
    "odd_mlp": lambda: random_mlp_spec([5, 7, 3]),
    "wide_mlp": lambda: random_mlp_spec([40, 64, 7]),
}
ALL_AGGREGATORS = ("mean", "max", "std", "sum")


@pytest.fixture(scope="module")
def built():
    if graph_native.library() is None:
        pytest.skip("the graph rule's native kernel cannot be built on this machine")


def _inputs(rule: LearnedRule, spec, dtype=torch.float32, seed: int = 0):
    """raw_features of one step of random parameters and gradients (dtype)."""
    gen = torch.Generator().manual_seed(seed)
    params = {k: torch.randn(e.shape, generator=gen, dtype=torch.float64) for k, e in spec.entries.items()}
    grads = {k: torch.randn(e.shape, generator=gen, dtype=torch.float64) for k, e in spec.entries.items()}
    states = {k: update_state(init_state(v, rule.features), grads[k], rule.features) for k, v in params.items()}
    parts = {k: raw_features(params[k], grads[k], states[k], rule.features) for k in params}
    return tuple({k: v[i].to(dtype) for k, v in parts.items()} for i in range(3))


def _close(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    """|actual - expected| <= rtol * max|expected| (float32 rounding, relative to the output's scale)."""
    scale = expected.abs().max().item()
    err = (actual.double() - expected.double()).abs().max().item()
    assert err <= rtol * scale, f"max error {err:.3g} > {rtol} x {scale:.3g}"


def _rule(spec, hidden: int, aggregators=("mean", "max"), layers: int = 2) -> LearnedRule:
    torch.manual_seed(0)
    net = make_net("graph", LearnedRule.build("mlp").features.num_features, hidden=hidden, layers=layers,
                   aggregators=aggregators)
    return perturbed(LearnedRule(net), 1)


@pytest.mark.parametrize("spec_name", sorted(SPECS))
@pytest.mark.parametrize("hidden", [4, 8, 16])
def test_native_forward_matches_the_float64_torch_path(built, spec_name, hidden):
    spec = SPECS[spec_name]()
    rule = _rule(spec, hidden)
    raw, inv, time = _inputs(rule, spec)
    with torch.no_grad():
        assert graph_native.supported(rule.net, raw)
        out = rule.net.forward_fused(raw, inv, time, spec=spec)
        rule.double()
        expected = rule.net.forward_fused(*_inputs(rule, spec, torch.float64), spec=spec)
    assert out.keys() == expected.keys()
    for k in expected:
        assert out[k].shape == expected[k].shape
    moved = torch.cat([v.flatten() for v in expected.values()])
    assert moved.std() > 1e-2  # the perturbed net's output varies: the check is not vacuous
    for k in expected:
        _close(out[k], expected[k], 2e-5)


@pytest.mark.parametrize("layers", [1, 3])
def test_native_forward_serves_every_aggregator_and_depth(built, layers):
    spec = SPECS["cnn"]()
    rule = _rule(spec, 8, ALL_AGGREGATORS, layers)
    raw, inv, time = _inputs(rule, spec)
    with torch.no_grad():
        out = rule.net.forward_fused(raw, inv, time, spec=spec)
        rule.net.native = False
        expected = rule.net.forward_fused(raw, inv, time, spec=spec)
    for k in expected:
        _close(out[k], expected[k], 2e-5)


def test_the_optimizer_step_matches_the_reference_update(built):
    spec = SPECS["wide_mlp"]()
    rule = _rule(spec, 8)
    rule64 = _rule(spec, 8).double()
    rule64.fused = False
    gen = torch.Generator().manual_seed(3)
    start = {k: torch.randn(e.shape, generator=gen, dtype=torch.float64) for k, e in spec.entries.items()}
    params = {k: v.float().clone() for k, v in start.items()}
    states = {k: init_state(v, rule.features) for k, v in params.items()}
    reference, ref_states = dict(start), {k: init_state(v, rule64.features) for k, v in start.items()}
    workspace = Workspace()
    for _ in range(3):
        inplace_step(rule, params, {k: v**3 - v for k, v in params.items()}, states, spec,
                     {k: 1.0 for k in params}, workspace)
        with torch.no_grad():
            reference, ref_states = rule64(reference, {k: v**3 - v for k, v in reference.items()}, ref_states, spec)
    moved = max((reference[k] - start[k]).abs().max().item() for k in start)
    assert moved > 1e-3
    for k in start:
        _close(params[k] - start[k].float(), reference[k] - start[k], 2e-4)


def test_meta_gradients_take_the_torch_path_and_match_the_reference():
    spec = SPECS["cnn"]()
    rule = _rule(spec, 4).double()
    gen = torch.Generator().manual_seed(1)
    params = {k: torch.randn(e.shape, generator=gen, dtype=torch.float64) for k, e in spec.entries.items()}
    grads = []
    for fused in (True, False):
        rule.fused = fused
        rule.zero_grad()
        states = {k: init_state(v, rule.features) for k, v in params.items()}
        p = params
        for _ in range(2):
            p, states = rule(p, {k: v**3 - v for k, v in p.items()}, states, spec)
        sum(v.square().sum() for v in p.values()).backward()
        grads.append([q.grad.clone() for q in rule.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    raw, _, _ = _inputs(rule, spec, torch.float32)
    assert not graph_native.supported(rule.float().net, raw)  # weights require grad, grad mode on


def test_the_learned_optimizer_runs_the_kernel(built, monkeypatch):
    spec = SPECS["odd_mlp"]()
    calls = []
    forward = graph_native.forward
    monkeypatch.setattr(graph_native, "forward", lambda *a: calls.append(1) or forward(*a))
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    names = dict(zip(spec.entries, model.parameters()))
    opt = LearnedOptimizer(names.items(), _rule(spec, 8), spec=spec)
    model(torch.randn(4, 5)).square().sum().backward()
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    assert calls and any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_switched_off_or_unbuildable_the_torch_path_serves(monkeypatch):
    spec = SPECS["odd_mlp"]()
    rule = _rule(spec, 8)
    raw, _, _ = _inputs(rule, spec)
    with torch.no_grad():
        monkeypatch.setenv(graph_native.ENV_VAR, "0")
        assert not graph_native.supported(rule.net, raw)
        monkeypatch.delenv(graph_native.ENV_VAR)
        rule.net.native = False
        assert not graph_native.supported(rule.net, raw)
        rule.net.native = True
        monkeypatch.setattr(weightspace.native, "load_library", lambda *a, **k: (_ for _ in ()).throw(OSError("no g++")))
        graph_native.library.cache_clear()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                assert not graph_native.supported(rule.net, raw)
                assert not graph_native.supported(rule.net, raw)
            assert len(caught) == 1 and "no g++" in str(caught[0].message)
        finally:
            graph_native.library.cache_clear()
