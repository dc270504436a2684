"""Hypothesis strategies drawing random specs (MLP, CNN, attention).

hypothesis is imported when a strategy is built, not when this module is imported,
so the library does not depend on it.
"""
from __future__ import annotations

from typing import Sequence

from ..errors import ConfigError
from .specs import random_attention_spec, random_cnn_spec, random_mlp_spec

ACTIVATIONS: tuple[str | None, ...] = (None, "relu", "tanh")


def _hypothesis():
    try:
        from hypothesis import strategies as st
    except ImportError as err:
        raise ImportError(
            "weightspace.testing.strategies needs hypothesis: pip install 'weightspace[test]'"
        ) from err
    return st


def specs(
    *,
    kinds: Sequence[str] = ("mlp", "cnn", "attention"),
    max_size: int = 5,
    activations: Sequence[str | None] = ACTIVATIONS,
):
    """Strategy for small manual specs of the given kinds.

    CNN specs put a (channel group, fixed h·w) factor pair on the head's input axis
    (conv → flatten → linear); attention specs put (heads, head_dim) factor pairs on
    the projections' head axis. MLP and CNN specs carry the sign/scale symmetries of
    their drawn activation.
    """
    st = _hypothesis()
    unknown = set(kinds) - {"mlp", "cnn", "attention"}
    if unknown or not kinds:
        raise ConfigError(f"kinds must be a non-empty subset of ('mlp', 'cnn', 'attention'), got {tuple(kinds)}")
    size = st.integers(1, max_size)
    acts = st.sampled_from(list(activations))
    built = {
        "mlp": st.builds(
            lambda widths, bias, act: random_mlp_spec(widths, bias=bias, activation=act),
            st.lists(size, min_size=2, max_size=5),
            st.booleans(),
            acts,
        ),
        "cnn": st.builds(
            lambda channels, kernel, hw, classes, bias, act, bn: random_cnn_spec(
                channels, kernel, hw, classes, bias=bias, activation=act, batchnorm=bn
            ),
            st.lists(size, min_size=2, max_size=4),
            st.integers(1, 3),
            st.integers(1, 4),
            size,
            st.booleans(),
            acts,
            st.booleans(),
        ),
        "attention": st.builds(
            lambda dim, heads, head_dim, bias: random_attention_spec(dim, heads, head_dim, bias=bias),
            size,
            size,
            size,
            st.booleans(),
        ),
    }
    return st.one_of(*(built[k] for k in kinds))
