"""The fused native SIREN fitter equals the autograd reference, in float64 to rounding, and its bytes
depend on nothing but each network's own inputs."""
from __future__ import annotations

import pytest
import torch

from zoo import siren, siren_native
from zoo.datasets import digits, grid_coords
from zoo.inr_trainer import FitSettings, fit, fit_reference
from zoo.inr_zoo import InrRecipe, init_seeds

pytestmark = pytest.mark.skipif(siren_native.library() is None, reason="the native SIREN fitter could not be built")
LR = 2.0**-10  # exact in float32: `fit` takes learning rates as float32, the reference as given


def _setup(n, widths=(2, 32, 32, 1), size=None, dtype=torch.float64, grid=None):
    cfg = siren.SirenConfig(widths=widths)
    init = siren.init_stack(cfg, init_seeds(InrRecipe(init="independent"), range(n)))
    if grid is None:
        data = digits() if size is None else digits().upsampled(size)
        coords, targets = data.coords(), data.targets()[:n]
    else:  # a 1-D grid: a smooth signal per network
        coords = grid_coords(grid)
        targets = torch.stack([torch.sin((i + 2) * coords) for i in range(n)])
    targets = torch.cat([targets * (-0.5) ** o for o in range(widths[-1])], dim=-1)  # one column per output unit
    cast = lambda t: t.to(dtype)  # noqa: E731
    return cfg, {k: cast(v) for k, v in init.items()}, cast(coords), cast(targets)


def _gap(cfg, a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in cfg.keys)


@pytest.mark.parametrize("widths,size,grid", [((2, 32, 32, 1), 28, None), ((2, 16, 24, 8, 1), None, None),
                                              ((1, 16, 16, 1), None, (50,)), ((2, 8, 2), None, None)])
def test_native_equals_reference_in_float64(widths, size, grid):
    cfg, init, coords, targets = _setup(4, widths, size, grid=grid)
    assert siren_native.supported(cfg, siren.grid_axes(coords), targets, init[cfg.keys[0]])
    settings = FitSettings(steps=30, lr=LR, target_psnr=28.0, check_every=4)
    ref, r_ref = fit_reference(cfg, init, coords, targets, settings)
    fast, r_fast = fit(cfg, init, coords, targets, settings, threads=2, device="cpu")
    assert torch.equal(r_ref.steps, r_fast.steps)
    assert _gap(cfg, ref, fast) < 1e-10
    torch.testing.assert_close(r_fast.mse, r_ref.mse, rtol=1e-9, atol=0.0)
    assert all(fast[k].dtype == torch.float64 for k in cfg.keys)


def test_native_equals_reference_in_float32_and_stops_early():
    cfg, init, coords, targets = _setup(6, dtype=torch.float32)
    lr = torch.tensor([1e-3, 2e-3, 5e-4, 1e-3, 3e-3, 1e-3])
    settings = FitSettings(steps=60, target_psnr=30.0, check_every=5)
    ref, r_ref = fit_reference(cfg, init, coords, targets, settings, lr=lr)
    fast, r_fast = fit(cfg, init, coords, targets, settings, lr=lr, device="cpu")
    assert len(set(r_ref.steps.tolist())) > 1 and torch.equal(r_ref.steps, r_fast.steps)
    for k in cfg.keys:
        torch.testing.assert_close(fast[k], ref[k], rtol=1e-4, atol=2e-5)
    torch.testing.assert_close(r_fast.mse, r_ref.mse, rtol=1e-3, atol=1e-7)


def test_bytes_depend_on_each_network_alone():
    """1 thread == 2 threads == the network fitted alone, to the byte (zoo shards and resumes compare bytes)."""
    cfg, init, coords, targets = _setup(5, size=28, dtype=torch.float32)
    settings = FitSettings(steps=12, target_psnr=15.0, check_every=3)
    one, r1 = fit(cfg, init, coords, targets, settings, threads=1, device="cpu")
    two, r2 = fit(cfg, init, coords, targets, settings, threads=2, device="cpu")
    alone, r3 = fit(cfg, {k: v[3:4] for k, v in init.items()}, coords, targets[3:4], settings, threads=1, device="cpu")
    assert all(torch.equal(one[k], two[k]) and torch.equal(one[k][3:4], alone[k]) for k in cfg.keys)
    assert torch.equal(r1.mse, r2.mse) and torch.equal(r1.mse[3:4], r3.mse) and torch.equal(r1.steps, r2.steps)


def test_switch_and_unsupported_shapes_take_the_torch_path(monkeypatch):
    cfg, init, coords, targets = _setup(3, dtype=torch.float32)
    axes, flat = siren.grid_axes(coords), init[cfg.keys[0]]
    assert siren_native.supported(cfg, axes, targets, flat)
    odd = siren.SirenConfig(widths=(2, 12, 1))
    assert not siren_native.supported(odd, axes, targets, flat)  # hidden width not a multiple of 8
    assert not siren_native.supported(cfg, None, targets, flat)  # off the grid
    assert not siren_native.supported(cfg, axes, targets.double(), flat)  # mixed dtypes
    settings = FitSettings(steps=20, lr=1e-3)
    native, _ = fit(cfg, init, coords, targets, settings, device="cpu")
    monkeypatch.setenv(siren_native.ENV_VAR, "0")
    assert not siren_native.supported(cfg, axes, targets, flat)
    torch_path, _ = fit(cfg, init, coords, targets, settings, device="cpu")
    assert not all(torch.equal(native[k], torch_path[k]) for k in cfg.keys)  # a different kernel ran
    assert _gap(cfg, native, torch_path) < 2e-5
