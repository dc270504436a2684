"""Small shared zoos for the zoo tests (built once per session, a few seconds)."""
from __future__ import annotations

import pytest

from zoo.inr_zoo import InrRecipe, build_inr_zoo

SMALL = dict(steps=40, lr=1e-3)


@pytest.fixture(scope="session")
def small_zoo(tmp_path_factory):
    """24 digits INRs (2 views each of 12 samples), shared init + permutation, shards of 10."""
    out = tmp_path_factory.mktemp("zoo") / "small"
    build_inr_zoo(out, "digits", InrRecipe(views=2, **SMALL), chunk=10, limit=12, progress=False)
    return out
