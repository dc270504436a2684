"""Shape specialisation: which input shapes the traced graph, and so the spec, speaks for.

torch.export traces static example shapes as constants: a branch on `x.shape` runs one
way and leaves no trace in the graph, so the spec holds on the traced shapes and says
nothing about the others. Where the export does record shape guards (dimensions the
caller marked dynamic, or `check_shapes=True`, which exports once more with every input
dimension `Dim.AUTO`), they are the conditions under which the traced graph is the
model's: a bound, parity or relation among sizes is a branch (or a constraint) the spec
does not cover, and is reported with a `ShapeGuardWarning`. A guard pinning one
dimension to its traced size (`x.shape[1] == 4`) is listed as a specialisation only: a
layer's fixed width records the same guard as a branch on that size does. torch also
specialises dimensions of size 0 or 1 without a guard.
"""
from __future__ import annotations

import logging
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.utils._pytree import tree_map

from ..errors import ShapeGuardWarning
from .context import Context

_PINNED = re.compile(r"^[\w\[\]'.]+\.shape\[\d+\] == -?\d+$")
_CHATTY = ("torch._export.non_strict_utils", "torch.fx.experimental.symbolic_shapes", "torch.export")


@dataclass(frozen=True)
class ShapeGuards:
    """The shape guards of one export, readable (`args[0].shape[0] > 3`).

    conditions: bounds, parities and relations among input sizes (branches on a shape);
    pinned: single dimensions equal to their traced size."""

    conditions: tuple[str, ...] = ()
    pinned: tuple[str, ...] = ()


def _readable(guard: str) -> str:
    guard = re.sub(r"L\['args'\]\[(\d+)\]", r"args[\1]", guard)
    guard = re.sub(r"L\['kwargs'\]\['(\w+)'\]", r"\1", guard)
    guard = re.sub(r"L\['(\w+)'\]", r"\1", guard)
    return re.sub(r"\.size\(\)\[(\d+)\]", r".shape[\1]", guard)


def recorded_guards(program) -> ShapeGuards:
    """The shape guards an exported program records (none where every shape was static)."""
    guards = [_readable(g) for g in getattr(program, "_guards_code", ()) if ".size()" in g]
    return ShapeGuards(tuple(g for g in guards if not _PINNED.match(g)), tuple(g for g in guards if _PINNED.match(g)))


@contextmanager
def _quiet():
    """torch logs each 0/1 specialisation of a Dim.AUTO dimension; the report says it once."""
    loggers = [logging.getLogger(n) for n in _CHATTY]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def dynamic_guards(packed: torch.nn.Module, args: tuple, kwargs: dict) -> ShapeGuards | str:
    """Export `packed` (a module called as packed(args, kwargs)) with every input dimension
    Dim.AUTO and read its shape guards, or say why that export failed."""
    auto = tree_map(lambda t: {i: torch.export.Dim.AUTO for i in range(t.ndim)}
                    if isinstance(t, torch.Tensor) else None, (tuple(args), dict(kwargs)))
    try:
        with _quiet():
            program = torch.export.export(packed, (tuple(args), dict(kwargs)), dynamic_shapes=auto, strict=False)
    except Exception as err:  # torch.export raises many unrelated types
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return recorded_guards(program)


def shape_note(args: tuple, kwargs: dict) -> str:
    """What every traced spec says about shapes: the ones it was traced on."""
    shapes = [f"args[{i}] {tuple(t.shape)}" for i, t in enumerate(args) if isinstance(t, torch.Tensor)]
    shapes += [f"{k} {tuple(t.shape)}" for k, t in kwargs.items() if isinstance(t, torch.Tensor)]
    return (f"input shapes {', '.join(shapes) or '(none)'}: a branch on a shape follows these only "
            "(check_shapes=True reads the conditions torch.export records)")


def report(ctx: Context, guards: ShapeGuards | str, call: str) -> None:
    """Note the guards of one call; warn where they hold a condition on shapes (or the check failed)."""
    if isinstance(guards, str):
        message = f"shapes of {call} could not be checked: the export with dynamic shapes failed ({guards})"
    elif guards.conditions:
        message = (f"the graph traced for {call} holds only for input shapes where "
                   f"{' and '.join(guards.conditions[:8])}{' and ...' if len(guards.conditions) > 8 else ''}: "
                   "a branch on a shape; the spec says nothing about other shapes (pass such a call in other_calls=)")
    else:
        if guards.pinned:
            ctx.notes.append(f"shapes of {call} pinned to their traced sizes: {', '.join(guards.pinned[:8])}"
                             + (", ..." if len(guards.pinned) > 8 else ""))
        return
    if not isinstance(guards, str) and guards.pinned:
        message += f"; pinned to their traced sizes: {', '.join(guards.pinned[:8])}"
    ctx.notes.append(message)
    warnings.warn(message, ShapeGuardWarning, stacklevel=3)
