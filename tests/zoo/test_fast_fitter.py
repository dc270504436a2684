"""The fast INR fitter equals the autograd reference per network, on every path it takes."""
from __future__ import annotations

import pytest
import torch

from zoo import siren, siren_native
from zoo.datasets import digits, grid_coords
from zoo.inr_trainer import FitSettings, fit, fit_reference
from zoo.inr_zoo import InrRecipe, init_seeds

WEIGHTS = dict(rtol=1e-4, atol=2e-5)


@pytest.fixture(params=["native", "torch"])
def both_paths(request, monkeypatch):
    """Run a test through the native kernel (where it builds) and through the torch path."""
    monkeypatch.setenv(siren_native.ENV_VAR, "1" if request.param == "native" else "0")


def _setup(n: int, size: int | None = None, widths=(2, 32, 32, 1)):
    data = digits() if size is None else digits().upsampled(size)
    cfg = siren.SirenConfig(widths=widths)
    return cfg, siren.init_stack(cfg, init_seeds(InrRecipe(init="independent"), range(n))), data.coords(), data.targets()[:n]


def _assert_same(cfg, a, ra, b, rb):
    assert torch.equal(ra.steps, rb.steps)
    for k in cfg.keys:
        torch.testing.assert_close(a[k], b[k], **WEIGHTS)
    torch.testing.assert_close(ra.mse, rb.mse, rtol=1e-3, atol=1e-7)


@pytest.mark.usefixtures("both_paths")
def test_fast_equals_reference_with_early_stops_groups_and_threads():
    cfg, init, coords, targets = _setup(7)
    lr = torch.tensor([1e-3, 2e-3, 5e-4, 1e-3, 3e-3, 1e-3, 2e-3])
    settings = FitSettings(steps=60, lr=1e-3, target_psnr=30.0, check_every=5)
    ref, r_ref = fit_reference(cfg, init, coords, targets, settings, lr=lr)
    assert len(set(r_ref.steps.tolist())) > 1, "early stopping should stop networks at different steps"
    fast, r_fast = fit(cfg, init, coords, targets, settings, lr=lr, threads=2, group_rows=3 * 64, device="cpu")
    _assert_same(cfg, ref, r_ref, fast, r_fast)


@pytest.mark.usefixtures("both_paths")
def test_fast_equals_reference_on_28x28_grids_and_deeper_sirens():
    """28×28 takes the angle-addition first layer; a deeper, uneven SIREN every buffer."""
    for widths in ((2, 32, 32, 1), (2, 16, 24, 8, 1)):
        cfg, init, coords, targets = _setup(3, size=28, widths=widths)
        assert siren.grid_axes(coords) is not None
        settings = FitSettings(steps=25, lr=1e-3)
        _assert_same(cfg, *fit_reference(cfg, init, coords, targets, settings), *fit(cfg, init, coords, targets, settings, device="cpu"))


def test_fast_equals_reference_off_the_grid_and_per_network_coords():
    cfg, init, coords, targets = _setup(4)
    shuffled = coords[torch.randperm(len(coords), generator=torch.Generator().manual_seed(0))]
    assert siren.grid_axes(shuffled) is None and siren.grid_axes(grid_coords((5, 3))) is not None
    per_net = torch.stack([coords, shuffled, coords.flip(0), shuffled.flip(0)])
    settings = FitSettings(steps=25, lr=1e-3)
    for c in (shuffled, per_net):
        _assert_same(cfg, *fit_reference(cfg, init, c, targets, settings), *fit(cfg, init, c, targets, settings, threads=2, group_rows=64, device="cpu"))


def test_hand_written_gradients_equal_autograd_and_step_flops():
    cfg, init, coords, targets = _setup(3, size=12, widths=(2, 8, 16, 4, 1))
    params = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    mse = ((siren.forward(cfg, params, coords) - targets) ** 2).mean(dim=(1, 2))
    mse.sum().backward()
    work: dict[str, torch.Tensor] = {}
    for axes in (None, siren.grid_axes(coords), siren.grid_axes(coords)):  # the third call reuses `work`
        m, grads = siren.mse_and_grads(cfg, init, coords, targets, axes, work)
        torch.testing.assert_close(m, mse.detach(), rtol=1e-5, atol=1e-7)
        for k in cfg.keys:
            torch.testing.assert_close(grads[k], params[k].grad, rtol=1e-4, atol=1e-6)
    assert siren.step_flops(siren.SirenConfig(), 784) == 2 * 784 * (2 * (64 + 1024 + 32) + 1024 + 32)


@pytest.mark.usefixtures("both_paths")
def test_same_bytes_for_any_thread_count_and_the_callers_threads_restored():
    """Builds must not depend on the machine's cores (resumes and torchrun compare shard bytes)."""
    cfg, init, coords, targets = _setup(9)
    settings = FitSettings(steps=10, target_psnr=20.0, check_every=3)
    before = torch.get_num_threads()
    one, r1 = fit(cfg, init, coords, targets, settings, threads=1, device="cpu")
    for threads in (2, 3):
        many, r2 = fit(cfg, init, coords, targets, settings, threads=threads, device="cpu")
        assert all(torch.equal(one[k], many[k]) for k in cfg.keys) and torch.equal(r1.mse, r2.mse)
    assert torch.get_num_threads() == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu_reference():
    cfg, init, coords, targets = _setup(5, size=28)
    settings = FitSettings(steps=25, lr=1e-3, target_psnr=25.0, check_every=5)
    _assert_same(cfg, *fit_reference(cfg, init, coords, targets, settings), *fit(cfg, init, coords, targets, settings, device="cuda"))
