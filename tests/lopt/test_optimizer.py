"""The learned optimizer: spec equivariance, exact resume, save/load, schedulers."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import weightspace as ws
from weightspace.errors import CheckpointError, SpecError
from weightspace.lopt import LearnedOptimizer, LearnedRule, load_rule, save_rule
from weightspace.lopt.features import init_state
from weightspace.testing import assert_equivariant, assert_negative_control, random_cnn_spec, random_mlp_spec
from tests.lopt.cases import perturbed

KINDS = ("mlp", "deepset", "groups", "unf", "graph")


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))


def _rule_fn(rule: LearnedRule, spec):
    """Weights (B, *shape) -> weights after one rule step with gradient g = w**3."""

    def fn(x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        outs = []
        for b in range(next(iter(x.values())).shape[0]):
            params = {k: v[b] for k, v in x.items()}
            grads = {k: v**3 for k, v in params.items()}
            states = {k: init_state(v, rule.features) for k, v in params.items()}
            outs.append(rule(params, grads, states, spec)[0])
        return {k: torch.stack([o[k] for o in outs]) for k in x}

    return fn


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("make_spec", [lambda: random_mlp_spec([4, 5, 3, 2]), lambda: random_cnn_spec([2, 3, 4], 3, 4, 5)])
def test_rule_step_commutes_with_spec_permutations(kind, make_spec):
    spec = make_spec()
    rule = perturbed(LearnedRule.build(kind, spec=spec, hidden=8).double(), 1)
    assert_equivariant(_rule_fn(rule, spec), spec, n_trials=2, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("kind", ["groups", "unf", "graph"])
def test_spec_aware_rules_read_across_entries(kind):
    """Negative control: permuting one axis of one entry alone must break commutation,
    which a rule that treats every tensor on its own would pass."""
    spec = random_mlp_spec([4, 5, 3, 2])
    rule = perturbed(LearnedRule.build(kind, spec=spec, hidden=8).double(), 2)
    assert_negative_control(_rule_fn(rule, spec), spec, spec_out=spec, margin=1e-7)


@pytest.mark.parametrize("kind", ["mlp", "deepset"])
def test_per_tensor_rules_do_not_read_across_entries(kind):
    spec = random_mlp_spec([4, 5, 3, 2])
    rule = perturbed(LearnedRule.build(kind, hidden=8).double(), 2)
    with pytest.raises(AssertionError):
        assert_negative_control(_rule_fn(rule, spec), spec, spec_out=spec, margin=1e-7)


def _train(model, opt, steps: int, seed: int) -> list[float]:
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        x = torch.randn(16, 6, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (16,), generator=gen)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("kind", ["groups", "unf", "graph"])
def test_training_a_permuted_model_gives_the_permuted_trajectory(kind):
    model = _mlp().double()
    spec = ws.parse(model, (torch.randn(2, 6, dtype=torch.float64),))
    rule = perturbed(LearnedRule.build(kind, spec=spec, hidden=8).double(), 3)
    g = spec.random_element(torch.Generator().manual_seed(4))
    twin = _mlp().double()
    twin.load_state_dict(spec.apply(model.state_dict(), g))
    start = {k: v.clone() for k, v in twin.state_dict().items()}
    a = _train(model, LearnedOptimizer(model.named_parameters(), rule, spec=spec), 8, seed=5)
    b = _train(twin, LearnedOptimizer(twin.named_parameters(), rule, spec=spec), 8, seed=5)
    assert a == pytest.approx(b, rel=1e-9)
    expected = spec.apply(model.state_dict(), g)
    for k, v in twin.state_dict().items():
        torch.testing.assert_close(v, expected[k], rtol=1e-9, atol=1e-11)
    assert max((v - start[k]).abs().max().item() for k, v in twin.state_dict().items()) > 1e-2


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_resume_is_identical(kind, tmp_path):
    model = _mlp().double()
    spec = ws.parse(model, (torch.randn(2, 6, dtype=torch.float64),))
    rule = perturbed(LearnedRule.build(kind, spec=spec, hidden=8).double(), 6)
    opt = LearnedOptimizer(model.named_parameters(), rule, spec=spec)
    _train(model, opt, 3, seed=7)
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, tmp_path / "ckpt.pt")
    rest = _train(model, opt, 4, seed=8)

    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    fresh = _mlp(seed=123).double()
    fresh.load_state_dict(ckpt["model"])
    opt2 = LearnedOptimizer(fresh.named_parameters(), rule, spec=spec)
    opt2.load_state_dict(ckpt["opt"])
    assert _train(fresh, opt2, 4, seed=8) == rest
    for k, v in model.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k]), k


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_rule_round_trip(kind, tmp_path):
    spec = random_mlp_spec([4, 5, 3])
    rule = perturbed(LearnedRule.build(kind, spec=spec, hidden=8, nominal="adam", alpha=0.2, beta=0.5), 9)
    path = save_rule(rule, tmp_path / "rule.safetensors")
    back = load_rule(path)
    assert back.config() == rule.config()
    params = {k: torch.randn(e.shape) for k, e in spec.entries.items()}
    states = {k: init_state(v, rule.features) for k, v in params.items()}
    out_a, _ = rule(params, params, states, spec)
    out_b, _ = back(params, params, states, spec)
    for k in params:
        assert torch.equal(out_a[k], out_b[k])


def test_load_rule_rejects_foreign_file(tmp_path):
    path = ws.save({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="no module config"):
        load_rule(path)


def test_lr_scheduler_scales_the_update():
    """Halving the group lr halves the step; StepLR changes it like any optimizer's."""
    base = _mlp().double()
    rule = perturbed(LearnedRule.build("deepset", hidden=8).double(), 10)
    steps = []
    for lr in (1.0, 0.5):
        model = _mlp().double()
        model.load_state_dict(base.state_dict())
        _train(model, LearnedOptimizer(model.parameters(), rule, lr=lr), 1, seed=11)
        steps.append({k: v - base.state_dict()[k] for k, v in model.state_dict().items()})
    for k in steps[0]:
        torch.testing.assert_close(steps[1][k], 0.5 * steps[0][k])
    model = _mlp().double()
    opt = LearnedOptimizer(model.parameters(), rule)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    _train(model, opt, 1, seed=12)
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


def test_spec_aware_rule_needs_named_parameters():
    model = _mlp()
    spec = ws.parse(model, (torch.randn(2, 6),))
    with pytest.raises(SpecError, match="not entries of the spec"):
        LearnedOptimizer(model.parameters(), LearnedRule.build("groups"), spec=spec)


def test_unf_rule_refuses_another_architecture():
    rule = LearnedRule.build("unf", spec=random_mlp_spec([4, 5, 3]), hidden=4)
    params = {k: torch.randn(e.shape) for k, e in random_mlp_spec([4, 5, 5, 3]).entries.items()}
    states = {k: init_state(v, rule.features) for k, v in params.items()}
    with pytest.raises(SpecError, match="one architecture"):
        rule(params, params, states, random_mlp_spec([4, 5, 5, 3]))


def test_unf_rule_transfers_across_widths():
    """Same weights, other hidden width: still equivariant on the new spec."""
    rule = perturbed(LearnedRule.build("unf", spec=random_mlp_spec([4, 5, 3]), hidden=4).double(), 13)
    wider = random_mlp_spec([4, 9, 3])
    assert_equivariant(_rule_fn(rule, wider), wider, n_trials=2, rtol=1e-9, atol=1e-10)
