"""The native fused step computes the reference update of `LearnedRule.forward` in float32.

Every test that runs the kernel shares one build (`native.library` is cached per process;
the build itself is cached on disk). They skip where it cannot be built.
"""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.utils.cpp_extension
from torch import nn

from weightspace.lopt import LearnedOptimizer, LearnedRule, native
from weightspace.lopt.features import init_state
from weightspace.lopt.inplace import Workspace, inplace_step
from weightspace.testing import assert_equivariant, random_cnn_spec, random_mlp_spec
from tests.lopt.cases import perturbed

# a CNN (3x3 kernels: runs shorter than a factor, entries without groups) and a wide MLP
# (tensors over several blocks, segments and thread pieces; per-unit contexts along rows and columns)
SPECS = {"cnn": lambda: random_cnn_spec([2, 3, 4], 3, 4, 5), "wide_mlp": lambda: random_mlp_spec([40, 600, 7])}


@pytest.fixture(scope="module")
def built():
    if native.library() is None:
        pytest.skip("the native step cannot be built on this machine")


def _rules(kind: str, bound: str, nominal: str, spec) -> tuple[LearnedRule, LearnedRule]:
    """The same perturbed rule in float64 (reference path) and float32 (native step)."""
    torch.manual_seed(0)
    rule = perturbed(LearnedRule.build(kind, spec=spec, hidden=6, layers=3, bound=bound, nominal=nominal,
                                       alpha=0.3).double(), 1)
    with torch.no_grad():
        rule.log_beta.fill_(0.0)
    rule.fused = False
    rule32 = LearnedRule.build(kind, spec=spec, hidden=6, layers=3, bound=bound, nominal=nominal)
    rule32.load_state_dict({k: v.float() for k, v in rule.state_dict().items()})
    return rule, rule32


def _start(spec) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(e.shape, generator=gen, dtype=torch.float64) for k, e in spec.entries.items()}


def _native_steps(rule32: LearnedRule, spec, start, lrs, steps: int):
    params = {k: v.float().clone() for k, v in start.items()}
    states = {k: init_state(v, rule32.features) for k, v in params.items()}
    assert native.supports_native(rule32, params, params, states, spec)
    workspace = Workspace()
    for _ in range(steps):
        inplace_step(rule32, params, {k: v**3 - v for k, v in params.items()}, states, spec, lrs, workspace)
    return params, states


def _close(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    """|actual - expected| <= rtol * max|expected| (float32 rounding, relative to the tensor's scale)."""
    scale = expected.abs().max().item()
    err = (actual.double() - expected).abs().max().item()
    assert err <= rtol * scale, f"max error {err:.3g} > {rtol} x {scale:.3g}"


@pytest.mark.parametrize("spec_name", sorted(SPECS))
@pytest.mark.parametrize("nominal", ["adam", "sgdm"])
@pytest.mark.parametrize("bound", ["relative", "none"])
@pytest.mark.parametrize("kind", ["mlp", "deepset", "groups"])
def test_native_step_matches_the_reference(built, kind, bound, nominal, spec_name):
    spec = SPECS[spec_name]()
    rule, rule32 = _rules(kind, bound, nominal, spec)
    start = _start(spec)
    lrs = {k: 0.5 + 0.1 * i for i, k in enumerate(start)}
    params, states = _native_steps(rule32, spec, start, lrs, steps=3)
    reference, ref_states = dict(start), {k: init_state(v, rule.features) for k, v in start.items()}
    for _ in range(3):
        new, ref_states = rule(reference, {k: v**3 - v for k, v in reference.items()}, ref_states, spec)
        reference = {k: reference[k] + lrs[k] * (new[k] - reference[k]) for k in new}
    assert max((reference[k] - start[k]).abs().max().item() for k in start) > 0.1
    for k in start:
        _close(params[k] - start[k].float(), reference[k] - start[k], 2e-4)
        for name in ("momenta", "rms"):
            _close(states[k][name], ref_states[k][name], 2e-4)
        assert states[k]["step"].item() == ref_states[k]["step"].item() == 3.0


@pytest.mark.parametrize("kind", ["mlp", "groups"])
def test_two_threads_give_the_one_thread_step(built, kind):
    spec = SPECS["wide_mlp"]()
    _, rule32 = _rules(kind, "relative", "adam", spec)
    start = _start(spec)
    lrs = dict.fromkeys(start, 1.0)
    one, _ = _native_steps(rule32, spec, start, lrs, steps=2)
    torch.set_num_threads(2)
    two, _ = _native_steps(rule32, spec, start, lrs, steps=2)
    for k in start:
        _close(two[k] - start[k].float(), one[k] - start[k].float(), 1e-5)


@pytest.mark.parametrize("kind", ["mlp", "deepset", "groups"])
def test_native_step_commutes_with_spec_permutations(built, kind):
    spec = SPECS["cnn"]()
    _, rule32 = _rules(kind, "relative", "adam", spec)

    def fn(x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        outs = []
        for b in range(next(iter(x.values())).shape[0]):
            params = {k: v[b].clone() for k, v in x.items()}
            states = {k: init_state(v, rule32.features) for k, v in params.items()}
            inplace_step(rule32, params, {k: v**3 for k, v in params.items()}, states, spec,
                         dict.fromkeys(params, 1.0), Workspace())
            outs.append(params)
        return {k: torch.stack([o[k] for o in outs]) for k in x}

    assert_equivariant(fn, spec, n_trials=2, dtype=torch.float32, rtol=1e-4, atol=1e-5)


def test_a_float32_optimizer_trains_like_the_torch_step(built):
    def run(use_native: bool) -> list[float]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
        rule = perturbed(LearnedRule.build("mlp", hidden=8), 1)
        rule.native = use_native
        opt = LearnedOptimizer(model.parameters(), rule, lr=0.5)
        gen = torch.Generator().manual_seed(1)
        losses = []
        for _ in range(5):
            x, y = torch.randn(16, 6, generator=gen), torch.randint(0, 3, (16,), generator=gen)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses

    native_losses, torch_losses = run(True), run(False)
    assert torch_losses[-1] < torch_losses[0]
    assert native_losses == pytest.approx(torch_losses, rel=1e-4)


def test_switches_select_the_torch_step(built, monkeypatch):
    spec = SPECS["cnn"]()
    _, rule32 = _rules("groups", "relative", "adam", spec)
    params = {k: v.float() for k, v in _start(spec).items()}
    states = {k: init_state(v, rule32.features) for k, v in params.items()}
    assert native.supports_native(rule32, params, params, states, spec)
    assert not native.supports_native(rule32, params, params, states, None)
    doubled = {k: v.double() for k, v in params.items()}
    assert not native.supports_native(rule32, doubled, doubled, states, spec)
    rule32.native = False
    assert not native.supports_native(rule32, params, params, states, spec)
    rule32.native = True
    monkeypatch.setenv(native.ENV_VAR, "0")
    assert not native.supports_native(rule32, params, params, states, spec)


def test_a_failed_build_warns_once_and_steps_with_torch(monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("no compiler")

    monkeypatch.setattr(torch.utils.cpp_extension, "load_inline", broken)
    native.library.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="no compiler"):
            assert native.library() is None
        spec = SPECS["cnn"]()
        _, rule32 = _rules("groups", "relative", "adam", spec)
        params = {k: v.float() for k, v in _start(spec).items()}
        before = {k: v.clone() for k, v in params.items()}
        states = {k: init_state(v, rule32.features) for k, v in params.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert not native.supports_native(rule32, params, params, states, spec)
            grads = {k: v.clone() for k, v in params.items()}
            inplace_step(rule32, params, grads, states, spec, dict.fromkeys(params, 1.0), Workspace())
        assert any((params[k] - before[k]).abs().max() > 0 for k in params)
    finally:
        native.library.cache_clear()
