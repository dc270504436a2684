"""Edge streaming: the per-edge work of a graph metanetwork in chunks, with bounded memory.

The parameter graph of a real network has millions of edges (ResNet-18: 1.93M). Held
whole, every per-edge activation of a layer stays alive for backward: gigabytes. Here
each chunk of edges runs its edge MLP and scatters into small node accumulators inside
`torch.utils.checkpoint`, so backward recomputes one chunk at a time and only the
layers' inputs and outputs are kept. A graph that fits one chunk runs without
checkpointing (nothing recomputed).

Two rewrites make the per-edge work cheaper without changing the function:

- the first linear layer of an MLP on `[h_i, h_j, x_ij]` is split by blocks: the node
  blocks are applied to the N node rows once and gathered (`node_terms`), only the edge
  block runs per edge (`edge_term`), so no (E, 3·hidden) concatenation exists;
- sums scatter with 1-D `index_add_` (no (E, d) index tensors), and the segment max
  has a backward that gathers by the 1-D index and counts ties only when there are any
  (`segment_max`), where `torch.scatter_reduce`'s own backward costs ~10 passes over
  the messages.

Resident memory: with glibc's default (dynamic) malloc thresholds the freed buffers of
past chunks can stay resident, several times the live peak; any fixed setting (e.g. the
environment variable MALLOC_TOP_PAD_=0) or jemalloc keeps the RSS near the live peak.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...errors import GMNError

MEMORY_BUDGET = 256 * 2**20
"""Bytes of per-edge activations one chunk may hold in backward (the auto chunk size)."""

ACTIVATIONS_PER_EDGE = 24
"""Hidden-sized tensors per edge a layer's chunk holds while it is recomputed (an upper bound)."""


def auto_chunk_size(hidden: int, dtype: torch.dtype, budget: int = MEMORY_BUDGET) -> int:
    """Edges per chunk so that one chunk's activations stay within `budget` bytes."""
    per_edge = ACTIVATIONS_PER_EDGE * hidden * torch.empty((), dtype=dtype).element_size()
    return max(1024, budget // per_edge)


def check_chunk_size(chunk_size: int | None) -> int | None:
    """`chunk_size` validated (None = auto)."""
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise GMNError(f"chunk_size must be a positive int or None (auto), got {chunk_size!r}")
    return chunk_size


def edge_chunks(num_edges: int, chunk_size: int | None, hidden: int, dtype: torch.dtype) -> list[slice]:
    """The edge ranges of a pass (one range when everything fits)."""
    size = check_chunk_size(chunk_size) or auto_chunk_size(hidden, dtype)
    return [slice(a, min(a + size, num_edges)) for a in range(0, max(num_edges, 1), size)]


def run_chunks(fn, chunks: list[slice], rows: tuple[torch.Tensor, ...], *shared):
    """`fn(chunk, *(x[chunk] for x in rows), *shared)` for each chunk, lazily (a consumer may fold
    each result in before the next exists); checkpointed when there are several chunks and grad is on.

    `rows` are split with `Tensor.split`, so backward joins their chunks' gradients once; a
    slice taken inside `fn` would give every chunk a full-size gradient to add."""
    stream = len(chunks) > 1 and torch.is_grad_enabled()
    pieces = [x.split([c.stop - c.start for c in chunks]) for x in rows]
    for i, c in enumerate(chunks):
        args = (c, *(p[i] for p in pieces), *shared)
        yield checkpoint(fn, *args, use_reentrant=False) if stream else fn(*args)


def merge_partials(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Partial node accumulators of two chunks as those of their union: "max" by maximum, the rest summed."""
    return {k: torch.maximum(a[k], b[k]) if k == "max" else a[k] + b[k] for k in a}


def node_terms(linear: nn.Linear, h: torch.Tensor, blocks: int) -> list[torch.Tensor]:
    """The first `blocks` input blocks of `linear` applied to node rows h (N, d): [h W_0ᵀ, h W_1ᵀ, ...]."""
    d = h.shape[1]
    return [F.linear(h, linear.weight[:, i * d : (i + 1) * d]) for i in range(blocks)]


def edge_term(linear: nn.Linear, x: torch.Tensor, block: int) -> torch.Tensor:
    """Input block `block` of `linear` (plus its bias) applied to per-edge rows x (c, d)."""
    d = x.shape[1]
    return F.linear(x, linear.weight[:, block * d : (block + 1) * d], linear.bias)


def expand_index(index: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A row index (c,) broadcast to x's shape (c, *f), as `scatter_reduce_` takes it (a view, no copy)."""
    return index.view(-1, *([1] * (x.dim() - 1))).expand_as(x)


def scatter_sum(x: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Σ of rows x (c, *f) at index (c,): (n, *f)."""
    return x.new_zeros((n, *x.shape[1:])).index_add_(0, index, x)


class _SegmentMax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, index, n):
        out = x.new_full((n, *x.shape[1:]), torch.finfo(x.dtype).min)
        out.scatter_reduce_(0, expand_index(index, x), x, "amax", include_self=True)
        ctx.save_for_backward(x, index, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, index, out = ctx.saved_tensors
        hit = x == out.index_select(0, index)
        if int(hit.sum()) > int((out != torch.finfo(out.dtype).min).sum()):  # tied maxima share the gradient
            grad = grad / scatter_sum(hit.to(grad.dtype), index, out.shape[0]).clamp_(min=1)
        return grad.index_select(0, index) * hit, None, None


def segment_max(x: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Max of rows x (c, *f) at index (c,): (n, *f); rows no edge reaches hold finfo.min.

    The gradient is shared evenly among tied maxima (as `torch.scatter_reduce`'s)."""
    return _SegmentMax.apply(x, index, n)


def finish_max(m: torch.Tensor) -> torch.Tensor:
    """A `segment_max` result with empty rows (finfo.min) set to 0, the convention of PyG's scatter."""
    return torch.where(m == torch.finfo(m.dtype).min, torch.zeros_like(m), m)


def pair_mlp(mlp: nn.Sequential, x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor,
             p_src: torch.Tensor, p_dst: torch.Tensor) -> torch.Tensor:
    """`mlp([h_src, h_dst, x])` per edge, from the node terms (p_src, p_dst) = `node_terms(mlp[0], h, 2)`."""
    z = p_src.index_select(0, src) + p_dst.index_select(0, dst) + edge_term(mlp[0], x, 2)
    return mlp[1:](z)
