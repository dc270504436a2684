"""The registry of per-op symmetry rules, keyed by ATen op name (overload packet)."""
from __future__ import annotations

from typing import Callable

RULES: dict[str, Callable] = {}


def rule(*names: str, reads_addresses: bool = False):
    """Register a rule `fn(ctx, p, out) -> value | None` under the given op names.

    `p` maps the op schema's argument names to values (TensorValue for tensors),
    `out` is the op's output as fresh TensorValues; a rule constrains atoms and may
    return a replacement output value (for ops that only rearrange axes).
    `reads_addresses`: the rule handles inputs that address an axis itself (an index
    consumer, see `parser.addressing`); for every other rule they are screened first.
    """

    def register(fn):
        fn.reads_addresses = reads_addresses
        for name in names:
            if name in RULES:
                raise ValueError(f"two rules for op {name!r}")
            RULES[name] = fn
        return fn

    return register


def lookup(name: str) -> Callable | None:
    fn = RULES.get(name)
    if fn is None and name.endswith("_") and not name.endswith("__"):
        fn = RULES.get(name[:-1])
    return fn
