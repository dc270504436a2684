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
