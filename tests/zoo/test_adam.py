"""BatchedAdam equals torch.optim.AdamW run on each network alone."""
from __future__ import annotations

import torch

from zoo.adam import BatchedAdam


def _losses(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    h = torch.tanh(torch.baddbmm(params["b1"].unsqueeze(1), x, params["w1"].transpose(1, 2)))
    return (h**2).mean(dim=(1, 2))


def test_matches_torch_adamw_per_network():
    g = torch.Generator().manual_seed(0)
    n = 3
    w1, b1 = torch.randn(n, 5, 4, generator=g), torch.randn(n, 5, generator=g)
    x = torch.randn(n, 7, 4, generator=g)
    lr = torch.tensor([1e-3, 1e-2, 3e-2])
    wd = torch.tensor([0.0, 0.1, 0.01])
    params = {"w1": w1.clone().requires_grad_(True), "b1": b1.clone().requires_grad_(True)}
    opt = BatchedAdam(params, lr=lr, weight_decay=wd)
    active = torch.tensor([True, True, False])
    for _ in range(5):
        opt.zero_grad()
        _losses(params, x).sum().backward()
        opt.step(active)
    for i in range(n):
        ref = {"w1": w1[i : i + 1].clone().requires_grad_(True), "b1": b1[i : i + 1].clone().requires_grad_(True)}
        torch_opt = torch.optim.AdamW(ref.values(), lr=float(lr[i]), weight_decay=float(wd[i]))
        for _ in range(5 if active[i] else 0):
            torch_opt.zero_grad()
            _losses(ref, x[i : i + 1]).sum().backward()
            torch_opt.step()
        for k in params:
            torch.testing.assert_close(params[k][i : i + 1].detach(), ref[k].detach(), rtol=1e-5, atol=1e-6)
    assert not torch.equal(params["w1"][0].detach(), w1[0])
    torch.testing.assert_close(params["w1"][2].detach(), w1[2], rtol=0, atol=0)
