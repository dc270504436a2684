"""Trajectory transfer (GMT / FGMT): a planted permuted init recovers the permuted trajectory
(MLP, CNN with BatchNorm), with negative controls; transferred checkpoints load and run and
beat the new init; bad input is refused."""
from __future__ import annotations

import warnings
from functools import lru_cache

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import weightspace as ws
from weightspace.align import loss_gradient, transfer_trajectory
from weightspace.errors import AlignError

from .digits import batches, digits


def _mlp(act=nn.ReLU) -> nn.Module:
    return nn.Sequential(nn.Linear(64, 16), act(), nn.Linear(16, 16), act(), nn.Linear(16, 10))


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 6, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 16, 10),
    )


@lru_cache(maxsize=4)
def _run(kind: str, seed: int, steps: int = 60, every: int = 10) -> tuple[nn.Module, tuple[dict, ...]]:
    """(model, checkpoints every `every` Adam steps, the init first) of one short digits run."""
    x, y, _, _ = digits()
    torch.manual_seed(seed)
    model = {"mlp": _mlp, "mlp_tanh": lambda: _mlp(nn.Tanh), "cnn": _cnn}[kind]()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    ckpts = [{k: v.clone() for k, v in model.state_dict().items()}]
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(y), (60,), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0:
            ckpts.append({k: v.clone() for k, v in model.state_dict().items()})
    return model.eval(), tuple(ckpts)


def _spec(model: nn.Module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ws.parse(model, (digits()[0][:8],))


def _gradient(model):
    x, y, _, _ = digits()
    return loss_gradient(model, batches(x[:400], y[:400], 200))


def _accuracy(net: nn.Module, sd: dict) -> float:
    _, _, xt, yt = digits()
    net.load_state_dict(sd)
    with torch.no_grad():
        return float((net.eval()(xt).argmax(-1) == yt).float().mean())


def _gap(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.mark.parametrize("kind", ["mlp_tanh", "cnn"])
@pytest.mark.parametrize("method", ["gmt", "fgmt"])
def test_planted_permuted_init_recovers_the_permuted_trajectory(kind, method):
    """Exact at every checkpoint where no unit is dead at the init (tanh; conv channels): with
    ReLU units dead on all the data their zero gradients tie, and a tie may pick another π."""
    model, source = _run(kind, 1)
    spec = _spec(model)
    g = spec.random_element(torch.Generator().manual_seed(7))
    planted = spec.apply(source[0], g)
    result = transfer_trajectory(spec, list(source), planted, _gradient(model), method=method)
    assert len(result.trajectory) == len(source) and len(result.objectives) == len(source) - 1
    for s, sd in enumerate(result.trajectory):
        assert _gap(sd, spec.apply(source[s], g)) < 1e-5, f"checkpoint {s}"
    for name in spec.groups:
        assert torch.equal(result.elements[-1].perms[name], g.perms[name]), name
    # negative controls: the un-permuted updates, and an unrelated init, do not give g · θ₁ˢ
    naive = transfer_trajectory(spec, list(source), planted, method="naive")
    assert _gap(naive.trajectory[-1], spec.apply(source[-1], g)) > 1e-2
    other = spec.apply(_run(kind, 2)[1][0], g)
    moved = transfer_trajectory(spec, list(source), other, _gradient(model), method=method)
    assert _gap(moved.trajectory[-1], spec.apply(source[-1], g)) > 1e-2


def test_transferred_checkpoints_load_run_and_beat_the_new_init_and_naive_transfer():
    model, source = _run("mlp", 1, steps=120, every=10)
    _, target = _run("mlp", 2)
    spec = _spec(model)
    kept = [{k: v.clone() for k, v in sd.items()} for sd in (*source, target[0])]
    gmt = transfer_trajectory(spec, list(source), target[0], _gradient(model), method="fgmt")
    naive = transfer_trajectory(spec, list(source), target[0], method="naive")
    net = _mlp()
    for sd in gmt.trajectory:
        net.load_state_dict(sd)
        with torch.no_grad():
            assert torch.isfinite(net(digits()[2])).all()
    init_acc = _accuracy(net, target[0])
    gmt_acc = [_accuracy(net, sd) for sd in gmt.trajectory]
    naive_acc = [_accuracy(net, sd) for sd in naive.trajectory]
    assert gmt_acc[-1] > init_acc + 0.2, (init_acc, gmt_acc)
    assert sum(gmt_acc) > sum(naive_acc) + 0.5, (gmt_acc, naive_acc)
    assert all(torch.equal(p, torch.arange(len(p))) for p in naive.elements[-1].perms.values())
    assert all(_gap(a, b) == 0 for a, b in zip(kept, (*source, target[0]))), "inputs are never modified"


def test_bad_input_is_refused():
    model, source = _run("mlp", 1)
    spec = _spec(model)
    grad = _gradient(model)
    with pytest.raises(AlignError, match="unknown transfer method"):
        transfer_trajectory(spec, list(source), source[0], grad, method="sgd")
    with pytest.raises(AlignError, match="at least 2 checkpoints"):
        transfer_trajectory(spec, [source[0]], source[0], grad)
    with pytest.raises(AlignError, match="needs a gradient"):
        transfer_trajectory(spec, list(source), source[0])
    short = {k: v for k, v in source[1].items() if k != "4.bias"}
    with pytest.raises(AlignError, match="source checkpoint 1"):
        transfer_trajectory(spec, [source[0], short], source[0], grad)
    with pytest.raises(AlignError, match="batch"):
        loss_gradient(model, [])
