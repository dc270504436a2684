"""Helpers shared by the learned-optimizer tests."""
from __future__ import annotations

import torch

from weightspace.lopt import LearnedRule


def perturbed(rule: LearnedRule, seed: int, scale: float = 0.3) -> LearnedRule:
    """The rule with its meta-network weights moved by `scale`·N(0, 1), so its output
    f is far from zero and matters in the checks (the rule is changed in place)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in rule.net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return rule
