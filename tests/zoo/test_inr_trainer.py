"""SIREN fitting: batched equals one-at-a-time, stored weights are nn.Sequential SIRENs, fits are accurate."""
from __future__ import annotations

import pytest
import torch

from zoo import siren
from zoo.datasets import digits
from zoo.inr_trainer import FitSettings, fit
from zoo.inr_zoo import InrRecipe, init_seeds
from weightspace.errors import ZooError


def _setup(n: int = 6):
    data = digits()
    cfg = siren.SirenConfig()
    seeds = init_seeds(InrRecipe(init="independent"), range(n))
    return cfg, siren.init_stack(cfg, seeds), data.coords(), data.targets()[:n]


def test_batched_equals_one_at_a_time():
    cfg, init, coords, targets = _setup()
    lr = torch.tensor([1e-3, 2e-3, 5e-4, 1e-3, 3e-3, 1e-3])
    settings = FitSettings(steps=60, lr=1e-3, target_psnr=30.0, check_every=5)
    batched, result = fit(cfg, init, coords, targets, settings, lr=lr)
    assert len(set(result.steps.tolist())) > 1, "early stopping should stop networks at different steps"
    for i in range(len(targets)):
        alone, r = fit(cfg, {k: v[i : i + 1] for k, v in init.items()}, coords, targets[i : i + 1], settings, lr=lr[i : i + 1])
        assert int(r.steps[0]) == int(result.steps[i])
        for k in cfg.keys:
            torch.testing.assert_close(batched[k][i : i + 1], alone[k], rtol=1e-4, atol=1e-5)


def test_grouped_equals_whole_and_does_not_mutate_init():
    cfg, init, coords, targets = _setup(5)
    before = {k: v.clone() for k, v in init.items()}
    whole, r1 = fit(cfg, init, coords, targets, FitSettings(steps=20), threads=1)
    chunked, r2 = fit(cfg, init, coords, targets, FitSettings(steps=20), threads=2, group_rows=2 * 64)
    for k in cfg.keys:
        torch.testing.assert_close(whole[k], chunked[k], rtol=1e-4, atol=1e-5)
        assert torch.equal(init[k], before[k])
    torch.testing.assert_close(r1.psnr, r2.psnr, rtol=1e-3, atol=1e-3)


def test_stored_weights_are_the_sequential_siren_and_fit_well():
    cfg, init, coords, targets = _setup(4)
    weights, result = fit(cfg, init, coords, targets, FitSettings(steps=300))
    assert float(result.psnr.min()) > 35.0
    module = cfg.module()
    for i in range(4):
        module.load_state_dict({k: v[i] for k, v in weights.items()})
        with torch.no_grad():
            out = module(coords)
        torch.testing.assert_close(out, siren.forward(cfg, weights, coords)[i], rtol=1e-4, atol=1e-5)
        mse = ((out - targets[i]) ** 2).mean()
        torch.testing.assert_close(mse, result.mse[i], rtol=0.0, atol=1e-9)  # PSNR is ~140 dB: compare MSEs


def test_init_rule_bounds():
    cfg = siren.SirenConfig(widths=(2, 16, 16, 1), w0=30.0)
    w = siren.init_one(cfg, torch.Generator().manual_seed(0))
    assert float(w["0.weight"].abs().max()) <= 1 / 2
    assert float(w["2.weight"].abs().max()) <= (6 / 16) ** 0.5 / 30
    torch_cfg = siren.SirenConfig(widths=(2, 16, 16, 1), first_init="torch")
    assert float(siren.init_one(torch_cfg, torch.Generator().manual_seed(0))["0.weight"].abs().max()) > 1 / 2


def test_dwsnets_init_scheme():
    """first_init="hidden" + bias_init="zero" (DWSNets' INR code): every layer on the hidden rule,
    biases 0; the weights are the default scheme's draws (same generator stream) where the rules agree."""
    cfg = siren.SirenConfig(widths=(2, 16, 16, 1), w0=30.0, first_init="hidden", bias_init="zero")
    w = siren.init_one(cfg, torch.Generator().manual_seed(0))
    base = siren.init_one(siren.SirenConfig(widths=(2, 16, 16, 1), w0=30.0), torch.Generator().manual_seed(0))
    assert float(w["0.weight"].abs().max()) <= (6 / 2) ** 0.5 / 30
    assert float(w["0.weight"].abs().max()) > 0.5 * (6 / 2) ** 0.5 / 30
    assert all(float(w[k].abs().max()) == 0.0 for k in cfg.keys if k.endswith("bias"))
    assert torch.equal(w["2.weight"], base["2.weight"]) and torch.equal(w["4.weight"], base["4.weight"])
    assert siren.SirenConfig.from_dict(cfg.to_dict()) == cfg
    assert siren.SirenConfig.from_dict({"widths": [2, 16, 1], "w0": 30.0}).bias_init == "torch"
    with pytest.raises(ZooError, match="bias init"):
        siren.SirenConfig(bias_init="normal")
