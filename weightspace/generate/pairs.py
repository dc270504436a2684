"""`CheckpointPairs`: (start, target) checkpoint pairs of one spec with their metrics, G.pt's training data.

Peebles et al. (G.pt, 2022) train on pairs of checkpoints of one training run: a
start checkpoint c_i, a later target c_j (i < j), and a scalar metric (loss, error
or return) of each. `from_trajectories` makes these pairs from stacked runs without
copying weights: start and target are `TensorRows`, views that pick rows of the
runs' checkpoints on access, so all forward pairs of thousands of runs fit in the
memory of the runs themselves. Indexing a `CheckpointPairs` selects pairs (still
lazily); `by_runs` keeps the pairs of some runs (train/held-out splits by run).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping

import torch

from ..errors import ConfigError, ShapeMismatchError
from ..spec import WeightSpec

PAIRINGS = ("forward", "init", "next")


class TensorRows(Mapping[str, torch.Tensor]):
    """`key -> pool[key][rows]`, computed on access: the rows of a pool of stacked checkpoints.

    Args:
        pool: `key -> (M, *shape)` tensors (M checkpoints).
        rows: (N,) long indices into the M checkpoints.
    """

    def __init__(self, pool: Mapping[str, torch.Tensor], rows: torch.Tensor):
        self.pool, self.rows = dict(pool), rows.long()

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.pool[key].index_select(0, self.rows)

    def __iter__(self) -> Iterator[str]:
        return iter(self.pool)

    def __len__(self) -> int:
        return len(self.pool)

    def select(self, index: torch.Tensor) -> "TensorRows":
        return TensorRows(self.pool, self.rows[index])

    def __repr__(self) -> str:
        return f"TensorRows({len(self.rows)} rows of {len(self.pool)} entries)"


def _select(tensors: Mapping[str, torch.Tensor], index: torch.Tensor) -> Mapping[str, torch.Tensor]:
    if isinstance(tensors, TensorRows):
        return tensors.select(index)
    return {k: v[index] for k, v in tensors.items()}


def _pair_indices(checkpoints: int, pairs: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, target) checkpoint indices within one run."""
    if pairs not in PAIRINGS:
        raise ConfigError(f"pairs={pairs!r}: expected one of {PAIRINGS}")
    if checkpoints < 2:
        raise ConfigError(f"a run needs at least two checkpoints to make pairs, got {checkpoints}")
    c = torch.arange(checkpoints)
    if pairs == "init":
        return torch.zeros(checkpoints - 1, dtype=torch.long), c[1:]
    if pairs == "next":
        return c[:-1], c[1:]
    i, j = torch.triu_indices(checkpoints, checkpoints, offset=1)
    return i, j


@dataclass(frozen=True)
class CheckpointPairs:
    """N (start, target) pairs: weights `key -> (N, *shape)` and metrics (N,).

    Attributes:
        start, target: the start and target checkpoints (plain dicts or lazy `TensorRows`).
        start_metric, target_metric: (N,) the scalar each checkpoint is conditioned on.
        run: (N,) the run each pair comes from (None when unknown).
        start_step: (N,) the index of the start checkpoint within its run (0: the init).
    """

    start: Mapping[str, torch.Tensor]
    target: Mapping[str, torch.Tensor]
    start_metric: torch.Tensor
    target_metric: torch.Tensor
    run: torch.Tensor | None = None
    start_step: torch.Tensor | None = None

    def __post_init__(self):
        n = int(self.start_metric.shape[0]) if self.start_metric.dim() == 1 else -1
        if n < 0 or tuple(self.target_metric.shape) != (n,):
            raise ConfigError(
                f"CheckpointPairs: start_metric and target_metric must both be (N,), got "
                f"{tuple(self.start_metric.shape)} and {tuple(self.target_metric.shape)}"
            )
        if set(self.start) != set(self.target):
            raise ConfigError("CheckpointPairs: start and target hold different keys")
        for name in ("run", "start_step"):
            t = getattr(self, name)
            if t is not None and tuple(t.shape) != (n,):
                raise ConfigError(f"CheckpointPairs: {name} must be ({n},), got {tuple(t.shape)}")

    @classmethod
    def from_trajectories(
        cls,
        spec: WeightSpec,
        weights: Mapping[str, torch.Tensor],
        metric: torch.Tensor,
        pairs: str = "forward",
    ) -> "CheckpointPairs":
        """Pairs within each of R runs of C checkpoints (a trajectory zoo's stacked tensors).

        Args:
            spec: the checkpoints' spec; `weights` must hold its entries (extra keys are ignored).
            weights: `key -> (R, C, *shape)`, checkpoint c of run r (in training order).
            metric: (R, C), the conditioning scalar of each checkpoint.
            pairs: "forward" (every c_i -> c_j with i < j, G.pt's pairing), "init"
                (c_0 -> c_j) or "next" (c_i -> c_{i+1}).
        """
        if metric.dim() != 2:
            raise ConfigError(f"metric must be (runs, checkpoints), got shape {tuple(metric.shape)}")
        runs, checkpoints = metric.shape
        pool = {}
        for key, entry in spec.entries.items():
            if key not in weights:
                raise ConfigError(f"from_trajectories: weights lack the spec's entry {key!r}")
            t = weights[key]
            if tuple(t.shape) != (runs, checkpoints, *entry.shape):
                raise ShapeMismatchError(key, (runs, checkpoints, *entry.shape), tuple(t.shape), where="from_trajectories")
            pool[key] = t.reshape(runs * checkpoints, *entry.shape)
        i, j = _pair_indices(checkpoints, pairs)
        run = torch.arange(runs).repeat_interleave(len(i))
        si, ti = i.repeat(runs), j.repeat(runs)
        flat = metric.reshape(-1)
        start_rows, target_rows = run * checkpoints + si, run * checkpoints + ti
        return cls(
            TensorRows(pool, start_rows), TensorRows(pool, target_rows),
            flat[start_rows], flat[target_rows], run=run, start_step=si,
        )

    def __len__(self) -> int:
        return int(self.start_metric.shape[0])

    def __getitem__(self, index) -> "CheckpointPairs":
        """The pairs at `index` (an int, slice, long or bool tensor)."""
        if isinstance(index, int):
            index = torch.tensor([index])
        elif isinstance(index, slice):
            index = torch.arange(len(self))[index]
        index = torch.as_tensor(index)
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return CheckpointPairs(
            _select(self.start, index), _select(self.target, index), self.start_metric[index],
            self.target_metric[index], pick(self.run), pick(self.start_step),
        )

    def by_runs(self, runs) -> "CheckpointPairs":
        """The pairs whose run id is in `runs` (e.g. the training runs of a split)."""
        if self.run is None:
            raise ConfigError("by_runs: these pairs carry no run ids (build them with from_trajectories)")
        wanted = torch.as_tensor(list(runs) if not torch.is_tensor(runs) else runs, dtype=torch.long)
        return self[torch.isin(self.run, wanted)]

    def materialize(self) -> "CheckpointPairs":
        """The same pairs with plain dicts of tensors (copies the selected rows)."""
        return CheckpointPairs(
            {k: self.start[k] for k in self.start}, {k: self.target[k] for k in self.target},
            self.start_metric, self.target_metric, self.run, self.start_step,
        )

    def to(self, device) -> "CheckpointPairs":
        """The pairs, materialized, on `device`."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return CheckpointPairs(
            {k: self.start[k].to(device) for k in self.start}, {k: self.target[k].to(device) for k in self.target},
            self.start_metric.to(device), self.target_metric.to(device), move(self.run), move(self.start_step),
        )

    def __repr__(self) -> str:
        runs = "" if self.run is None else f", {int(self.run.unique().numel())} runs"
        return f"CheckpointPairs({len(self)} pairs, {len(self.start)} entries{runs})"
