"""Adam(W) over stacked parameters: one independent optimizer per network, in one pass.

Every network keeps its own moments, step count, learning rate and weight decay, so
training N stacked networks equals training each alone with `torch.optim.AdamW`
(decoupled weight decay; `weight_decay=0` is plain Adam). `active` freezes networks
that stopped early (target reached, epoch budget spent) without leaving the batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def _per_net(value: torch.Tensor | float, n: int, like: torch.Tensor) -> torch.Tensor:
    """A (n, 1, ..., 1) tensor broadcasting over `like` of shape (n, ...)."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device).expand(n).clone()
    return t.reshape(n, *([1] * (like.dim() - 1)))


def bias_corrections(betas: tuple[float, float], t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam's bias corrections 1 - β1^t and √(1 - β2^t) at step counts t (float64), in the default dtype."""
    b1, b2 = betas
    return (1 - b1**t).to(torch.get_default_dtype()), (1 - b2**t).sqrt().to(torch.get_default_dtype())


@dataclass
class BatchedAdam:
    """AdamW over a dict of stacked tensors (leading dim = network index).

    Args:
        params: name -> leaf tensor (N, ...) with requires_grad.
        lr, weight_decay: a float, or a tensor of shape (N,) for per-network values.
        betas, eps: as in torch.optim.AdamW.
    """

    params: dict[str, torch.Tensor]
    lr: torch.Tensor | float = 1e-3
    weight_decay: torch.Tensor | float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self):
        first = next(iter(self.params.values()))
        self.n = first.shape[0]
        self.exp_avg = {k: torch.zeros_like(p) for k, p in self.params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(p) for k, p in self.params.items()}
        self.steps = torch.zeros(self.n, dtype=torch.float64, device=first.device)
        self._lr = {k: _per_net(self.lr, self.n, p) for k, p in self.params.items()}
        self._wd = {k: _per_net(self.weight_decay, self.n, p) for k, p in self.params.items()}
        self._decay = bool(torch.as_tensor(self.weight_decay).ne(0).any())

    @torch.no_grad()
    def step(self, active: torch.Tensor | None = None, grads: dict[str, torch.Tensor] | None = None) -> None:
        """One update of every active network from `grads` (name -> gradient; default each `p.grad`)."""
        b1, b2 = self.betas
        act = torch.ones(self.n, dtype=torch.bool, device=self.steps.device) if active is None else active
        everyone = bool(act.all())
        self.steps += act.to(torch.float64)
        bc1, bc2_sqrt = bias_corrections(self.betas, self.steps.clamp(min=1))
        for k, p in self.params.items():
            g = p.grad if grads is None else grads.get(k)
            if g is None:
                continue
            shape = (self.n, *([1] * (p.dim() - 1)))
            lr, wd = self._lr[k], self._wd[k]
            m, v = self.exp_avg[k], self.exp_avg_sq[k]
            step_size = lr / bc1.reshape(shape).to(p.dtype)
            if everyone:
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v.sqrt() / bc2_sqrt.reshape(shape).to(p.dtype)).add_(self.eps)
                if self._decay:
                    p.mul_(1 - lr * wd)
                p.sub_(m.div(denom).mul_(step_size))
                continue
            a = act.reshape(shape)
            new_m = m.lerp(g, 1 - b1)
            new_v = v * b2 + (1 - b2) * g * g
            denom = new_v.sqrt() / bc2_sqrt.reshape(shape).to(p.dtype) + self.eps
            new_p = p * (1 - lr * wd) - step_size * new_m / denom
            m.copy_(torch.where(a, new_m, m))
            v.copy_(torch.where(a, new_v, v))
            p.copy_(torch.where(a, new_p, p))

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None
