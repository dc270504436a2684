"""How alignment code reads a batch: `x`, `(x,)`, `(x, y)` or `((x1, x2), y)`."""
from __future__ import annotations

from typing import Any, Iterable, Iterator

import torch

from ..errors import AlignError


def split_batch(batch: Any) -> tuple[tuple, torch.Tensor | None]:
    """(model positional inputs, targets or None) of one batch."""
    if isinstance(batch, torch.Tensor):
        return (batch,), None
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            return (batch[0],), None
        if len(batch) == 2:
            inputs, target = batch
            return (tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)), target
    raise AlignError(
        f"a batch must be a tensor of inputs, (inputs,) or (inputs, targets); got {type(batch).__name__}"
        + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
    )


def input_batches(batches: Iterable[Any], limit: int | None = None) -> Iterator[tuple]:
    """The model inputs of each batch, at most `limit` batches."""
    for i, batch in enumerate(batches):
        if limit is not None and i >= limit:
            return
        yield split_batch(batch)[0]
