"""Per-entry canonical layout for the equivariant layers: (B, *permuted, C·F), channels last.

An entry's axes are split into their factors (heads × head_dim, channels × h·w);
factors permuted by a group stay as tensor dimensions, fixed factors (kernel taps,
input pixels, class logits) are folded with the C channels into one last dimension
of length C·F. The group acts trivially on that last dimension, so an equivariant
layer may mix it densely, and channel mixing becomes one matmul.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Sequence

import torch

from ..spec import Entry


@dataclass(frozen=True)
class EntryLayout:
    """Where an entry's permuted and fixed factors sit in its factored shape."""

    key: str
    shape: tuple[int, ...]
    factored: tuple[int, ...]
    perm_pos: tuple[int, ...]
    perm_groups: tuple[str, ...]
    fixed_pos: tuple[int, ...]

    @classmethod
    def of(cls, entry: Entry) -> "EntryLayout":
        factors = [f for axis in entry.axes for f in axis]
        perm = tuple(i for i, f in enumerate(factors) if f.group is not None)
        fixed = tuple(i for i, f in enumerate(factors) if f.group is None)
        return cls(
            entry.key,
            tuple(entry.shape),
            tuple(f.size for f in factors),
            perm,
            tuple(factors[i].group for i in perm),
            fixed,
        )

    @property
    def perm_sizes(self) -> tuple[int, ...]:
        return tuple(self.factored[i] for i in self.perm_pos)

    @property
    def fixed_size(self) -> int:
        return prod(self.factored[i] for i in self.fixed_pos)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *shape) -> (B, *perm_sizes, C·F)."""
        b, c = x.shape[:2]
        t = x.reshape(b, c, *self.factored)
        order = (0, *(2 + p for p in self.perm_pos), 1, *(2 + p for p in self.fixed_pos))
        return t.permute(order).reshape(b, *self.perm_sizes, c * self.fixed_size)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, *perm_sizes, C·F) -> (B, C, *shape)."""
        b = z.shape[0]
        c = z.shape[-1] // self.fixed_size
        fixed = [self.factored[p] for p in self.fixed_pos]
        t = z.reshape(b, *self.perm_sizes, c, *fixed)
        m = len(self.perm_pos)
        # position in t of each factored dim: permuted ones first, then fixed after C
        where = {p: 1 + i for i, p in enumerate(self.perm_pos)}
        where.update({p: 2 + m + i for i, p in enumerate(self.fixed_pos)})
        order = (0, 1 + m, *(where[p] for p in range(len(self.factored))))
        return t.permute(order).reshape(b, c, *self.shape)


def merged_geometry(t: torch.Tensor, blocks: Sequence[Sequence[int]]) -> tuple[list[int], list[int]]:
    """Sizes and strides of the view of `t` (B, *perm, K) with each block of perm dims merged.

    Dims in one block share an index (a generalized diagonal); the view's dims are
    (B, one per block in order, K).
    """
    stride = t.stride()
    size = t.shape
    sizes = [size[0]] + [size[1 + blk[0]] for blk in blocks] + [size[-1]]
    strides = [stride[0]] + [sum(stride[1 + p] for p in blk) for blk in blocks] + [stride[-1]]
    return sizes, strides


def diagonal(t: torch.Tensor, blocks: Sequence[Sequence[int]]) -> torch.Tensor:
    """The generalized diagonal of `t` (B, *perm, K) over `blocks` (a view)."""
    if all(len(b) == 1 for b in blocks) and [b[0] for b in blocks] == list(range(len(blocks))):
        return t
    sizes, strides = merged_geometry(t, blocks)
    return t.as_strided(sizes, strides, t.storage_offset())


def embed_diagonal(z: torch.Tensor, blocks: Sequence[Sequence[int]], perm_sizes: Sequence[int]) -> torch.Tensor:
    """Zeros of shape (B, *perm_sizes, K) with `z` (B, one dim per block, K) on the diagonal."""
    if all(len(b) == 1 for b in blocks) and [b[0] for b in blocks] == list(range(len(blocks))):
        return z
    out = z.new_zeros(z.shape[0], *perm_sizes, z.shape[-1])
    sizes, strides = merged_geometry(out, blocks)
    return torch.as_strided_scatter(out, z, sizes, strides, 0)
