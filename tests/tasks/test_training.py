"""The shared training loop: it learns, selects on validation, and two DDP processes
take the same steps as one process with the same global batch."""
from __future__ import annotations


import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from tasks.training import FitConfig, WeightData, batch_bounds, fit, r_squared, score


def _data(n: int, seed: int) -> WeightData:
    """Two classes of 'networks' whose first-layer mean differs."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    w = torch.randn(n, 6, 3, generator=gen) + 0.8 * (2 * y - 1).float()[:, None, None] * torch.linspace(-1, 1, 3)
    b = torch.randn(n, 6, generator=gen)
    return WeightData({"0.weight": w, "0.bias": b}, y)


class Flat(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, w):
        return self.net(torch.cat([w["0.weight"].flatten(1), w["0.bias"]], 1))


def test_fit_learns_and_keeps_the_best_validation_state():
    torch.manual_seed(0)
    model = Flat()
    result = fit(model, _data(128, 0), _data(64, 1), FitConfig(epochs=15, batch_size=32, lr=3e-3, progress=False),
                 test=_data(64, 2))
    assert result.best_val == max(result.curves["val"])
    assert result.best_val > 0.9 and result.test > 0.85
    assert result.curves["train_loss"][-1] < result.curves["train_loss"][0]
    assert score(model, _data(64, 1), lambda w: w, "classify") == pytest.approx(result.best_val)


class FlatBN(Flat):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(24, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))


def test_label_smoothing_is_the_training_loss():
    """With lr 0 and one full batch, the recorded training loss is the smoothed cross
    entropy (1 - ε)·NLL + ε·mean_k(−log p_k) of the model's outputs, not the plain one."""
    torch.manual_seed(0)
    model, data = Flat(), _data(40, 0)
    with torch.no_grad():
        logp = model(data.weights).log_softmax(-1)
    nll = -logp.gather(1, data.targets[:, None]).mean()
    smoothed = 0.9 * nll - 0.1 * logp.mean()
    cfg = FitConfig(epochs=1, batch_size=40, lr=0.0, label_smoothing=0.1, progress=False)
    loss = fit(model, data, _data(16, 1), cfg).curves["train_loss"][0]
    assert loss == pytest.approx(float(smoothed), rel=1e-5)
    assert abs(loss - float(nll)) > 1e-3


@pytest.mark.parametrize("n", [1, 2, 33, 65, 129])
def test_any_zoo_size_trains_with_batchnorm(n):
    """A last batch of one network is folded into the one before, so BatchNorm never sees
    a batch of one (the 1,000-INR crash: 'Expected more than 1 value per channel')."""
    bounds = batch_bounds(n, 32)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(b[0] == a[1] for a, b in zip(bounds, bounds[1:]))
    assert n == 1 or all(hi - lo >= 2 for lo, hi in bounds)
    if n > 1:
        torch.manual_seed(0)
        result = fit(FlatBN(), _data(n, 0), _data(16, 1), FitConfig(epochs=2, batch_size=32, progress=False))
        assert len(result.curves["train_loss"]) == 2


def test_batch_bounds_keep_full_batches_unchanged():
    assert batch_bounds(128, 32) == [(0, 32), (32, 64), (64, 96), (96, 128)]
    assert batch_bounds(70, 32) == [(0, 32), (32, 64), (64, 70)]
    assert batch_bounds(65, 32) == [(0, 32), (32, 65)]
    assert batch_bounds(67, 32, min_size=4) == [(0, 32), (32, 67)]


def test_regression_metrics():
    import numpy as np

    t = np.linspace(0, 1, 20)
    assert r_squared(t, t) == pytest.approx(1.0)
    assert r_squared(np.full(20, t.mean()), t) == pytest.approx(0.0)


def _worker(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = Flat()
        fit(model, _data(64, 0), _data(32, 1), FitConfig(epochs=3, batch_size=16, lr=1e-2, progress=False))
        if rank == 0:
            torch.save(model.state_dict(), out)
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_match_one(tmp_path):
    torch.manual_seed(0)
    single = Flat()
    fit(single, _data(64, 0), _data(32, 1), FitConfig(epochs=3, batch_size=16, lr=1e-2, progress=False))
    out = str(tmp_path / "ddp.pt")
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_worker, args=(2, init, out), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)
    for k, v in single.state_dict().items():
        torch.testing.assert_close(ddp[k], v, rtol=1e-5, atol=1e-6)
