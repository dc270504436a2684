"""Checks and generators for testing functions of weights against a `WeightSpec`.

Shipped so that users' own layers get the same checks as weightspace's:

    from weightspace.testing import assert_equivariant, random_mlp_spec
    spec = random_mlp_spec([3, 5, 2])
    assert_equivariant(my_layer.double(), spec)

Hypothesis strategies live in `weightspace.testing.strategies` (needs hypothesis).
"""
from .equivariance import assert_equivariant, assert_invariant
from .negative import assert_negative_control, single_axis_spec
from .specs import random_attention_spec, random_cnn_spec, random_mlp_spec
from .weights import random_weights

__all__ = [
    "assert_equivariant",
    "assert_invariant",
    "assert_negative_control",
    "random_attention_spec",
    "random_cnn_spec",
    "random_mlp_spec",
    "random_weights",
    "single_axis_spec",
]
