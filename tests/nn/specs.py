"""Specs the metanetwork tests run on: parsed example models (cached) and hand-written ones."""
from __future__ import annotations

from functools import lru_cache

import weightspace as ws
from weightspace.examples import build
from weightspace.nn import metanet_spec
from weightspace.spec import WeightSpec

PARSED = ("mlp", "siren", "cnn", "resnet", "transformer")
CHAINS = ("mlp", "siren", "cnn")
NOT_CHAINS = ("resnet", "transformer", "gru")


@lru_cache(maxsize=None)
def parsed(name: str) -> WeightSpec:
    """The metanet spec (parameters only) of `weightspace.examples.build(name)`, parsed."""
    model, inputs = build(name)
    return metanet_spec(ws.parse(model, inputs))


@lru_cache(maxsize=None)
def relu_cnn() -> WeightSpec:
    """A plain conv chain (conv-ReLU-conv-ReLU-flatten-linear, no norms): positive scalings on both groups."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(96, 5))
    return metanet_spec(ws.parse(model, (torch.randn(2, 1, 8, 8),)))


def extra_spec(name: str) -> WeightSpec:
    """The specs with extra symmetries: "mlp" and "cnn" (ReLU: scales), "siren" (sine: signs)."""
    return relu_cnn() if name == "cnn" else parsed(name)
