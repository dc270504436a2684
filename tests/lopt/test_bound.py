"""Magnitude control: the bounded learned term stays within β × the nominal term per tensor,
for any features and at any step; the unbounded rule does not (negative control)."""
from __future__ import annotations

import pytest
import torch

from weightspace.errors import ConfigError
from weightspace.lopt import LearnedRule, load_rule, save_rule
from weightspace.lopt.features import init_state
from weightspace.lopt.serialize import rule_from_config
from weightspace.testing import random_cnn_spec
from tests.lopt.cases import perturbed

KINDS = ("mlp", "deepset", "groups", "graph")


def _extreme_inputs(spec, scale: float, step: float, seed: int):
    """Huge parameters, tiny gradients and momenta, a step counter far past any horizon."""
    gen = torch.Generator().manual_seed(seed)
    params, grads, states = {}, {}, {}
    for k, e in spec.entries.items():
        params[k] = scale * torch.randn(e.shape, generator=gen, dtype=torch.float64)
        grads[k] = 1e-6 * torch.randn(e.shape, generator=gen, dtype=torch.float64)
        state = init_state(params[k], LearnedRule.build("mlp").features)
        state["step"] = torch.tensor(step, dtype=torch.float64)
        state["momenta"] = 1e-6 * torch.randn(state["momenta"].shape, generator=gen, dtype=torch.float64)
        state["rms"] = 1e-12 * torch.rand(e.shape, generator=gen, dtype=torch.float64)
        states[k] = state
    return params, grads, states


def _ratios(rule: LearnedRule, spec, scale: float, step: float) -> list[float]:
    """Per tensor: ‖update‖ / (α (1 + β) ‖nominal‖)."""
    params, grads, states = _extreme_inputs(spec, scale, step, seed=3)
    with torch.no_grad():
        new, new_states = rule(params, grads, states, spec)
    out = []
    for k in params:
        nominal = rule.nominal_term(new_states[k]).norm().item()
        out.append((params[k] - new[k]).norm().item() / (rule.alpha * (1 + rule.beta) * nominal))
    return out


@pytest.mark.parametrize("nominal", ["adam", "sgdm"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("scale", "step"), [(1.0, 10.0), (1e6, 1e5)])
def test_bounded_update_never_exceeds_the_nominal_bound(kind, scale, step, nominal):
    spec = random_cnn_spec([2, 3, 4], 3, 4, 5)
    rule = perturbed(LearnedRule.build(kind, spec=spec, hidden=6, nominal=nominal).double(), 1, scale=3.0)
    ratios = _ratios(rule, spec, scale, step)
    assert max(ratios) <= 1.0 + 1e-9, ratios
    assert max(ratios) > 0.5, "the learned term should be large here, or the check proves nothing"


@pytest.mark.parametrize("kind", ["mlp", "groups"])
def test_unbounded_rule_breaks_the_bound(kind):
    """With tiny gradient momenta (the SGD-momentum nominal is tiny) the unbounded f is not."""
    spec = random_cnn_spec([2, 3, 4], 3, 4, 5)
    rule = LearnedRule.build(kind, spec=spec, hidden=6, nominal="sgdm", bound="none", beta=3.0)
    rule = perturbed(rule.double(), 1, scale=3.0)
    assert max(_ratios(rule, spec, 1e6, 1e5)) > 1e3


@pytest.mark.parametrize("nominal", ["adam", "sgdm"])
@pytest.mark.parametrize("bound", ["relative", "none"])
def test_zero_momentum_is_a_fixed_point_only_with_the_bound(bound, nominal):
    spec = random_cnn_spec([2, 3, 4], 3, 4, 5)
    rule = LearnedRule.build("deepset", hidden=6, nominal=nominal, bound=bound, beta=3.0).double()
    rule = perturbed(rule, 2, scale=3.0)
    gen = torch.Generator().manual_seed(4)
    params = {k: torch.randn(e.shape, generator=gen, dtype=torch.float64) for k, e in spec.entries.items()}
    states = {k: init_state(v, rule.features) for k, v in params.items()}
    with torch.no_grad():
        new, _ = rule(params, {k: torch.zeros_like(v) for k, v in params.items()}, states)
    moved = max((new[k] - params[k]).abs().max().item() for k in params)
    assert (moved == 0.0) == (bound == "relative"), moved


def test_bound_round_trips_and_old_files_read_as_unbounded(tmp_path):
    rule = LearnedRule.build("mlp", hidden=4, bound="none")
    assert load_rule(save_rule(rule, tmp_path / "a.safetensors")).bound == "none"
    assert load_rule(save_rule(LearnedRule.build("mlp", hidden=4), tmp_path / "b.safetensors")).bound == "relative"
    config = rule.config()
    del config["bound"]
    assert rule_from_config(config).bound == "none"


def test_unknown_bound_is_refused():
    with pytest.raises(ConfigError, match="unknown bound"):
        LearnedRule.build("mlp", hidden=4, bound="clip")
