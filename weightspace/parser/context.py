"""What a symmetry rule sees: tensor values as factor lists, and the shared atom store."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import UnknownOpError
from .atoms import Atoms


@dataclass
class TensorValue:
    """A traced tensor: its shape and, per axis, the atoms (factors) it is made of.

    addresses: for an integer tensor whose values are positions along some axis (what
    topk/argmax/sort report), that axis's atoms; None otherwise (see `parser.addressing`).
    """

    shape: tuple[int, ...]
    axes: list[list[int]]
    node: str = ""
    addresses: list[int] | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def atoms(self) -> list[int]:
        return [a for axis in self.axes for a in axis]


@dataclass
class Context:
    """State shared by the rules while one exported graph is walked."""

    atoms: Atoms = field(default_factory=Atoms)
    strict: bool = False
    notes: list[str] = field(default_factory=list)
    uniform_nodes: set[str] = field(default_factory=set)
    layer_states: dict[str, list[int]] = field(default_factory=dict)
    node: Any = None

    def fresh(self, shape, fixed: str | None = None) -> TensorValue:
        shape = tuple(int(s) for s in shape)
        return TensorValue(shape, [self.atoms.axis(s, fixed) for s in shape], self.node.name if self.node else "")

    def unify(self, a: list[int], b: list[int], why: str = "incompatible factorizations") -> None:
        self.atoms.unify(a, b, reason=why)

    def fix(self, value, reason: str) -> None:
        for t in tensors_in(value):
            self.atoms.fix(t.atoms(), reason)

    def where(self) -> str:
        """The module path (or fx node) the current op comes from, for messages."""
        node = self.node
        if node is None:
            return "?"
        stack = node.meta.get("nn_module_stack") or {}
        if stack:
            path = list(stack.values())[-1][0]
            path = path.removeprefix("L['self'].").removeprefix("model.")
            return f"{path} ({node.name})" if path else node.name
        return node.name

    def unknown(self, values, op: str, why: str = "no symmetry rule") -> None:
        """Freeze every axis the op touches and say so (or raise in strict mode)."""
        message = f"{op} at {self.where()}: {why}; its axes were frozen"
        if self.strict:
            raise UnknownOpError(message + " (strict=True)")
        self.notes.append(message)
        warnings.warn(message, stacklevel=3)
        for t in tensors_in(list(values)):
            self.atoms.fix(t.atoms(), f"{op}: {why}")
            if t.addresses is not None:
                self.atoms.fix(t.addresses, f"{op}: {why}")


def packet(node) -> str:
    """The ATen op (overload packet) name of an fx node, "" for anything else."""
    target = node.target
    return target._overloadpacket.__name__ if isinstance(target, torch._ops.OpOverload) else ""


def tensors_in(value) -> list[TensorValue]:
    """Every TensorValue inside a (possibly nested) value."""
    if isinstance(value, TensorValue):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors_in(v)]
    return []
