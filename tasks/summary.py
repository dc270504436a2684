"""Mean, standard deviation and per-seed values of a job's per-seed results (one place for every job)."""
from __future__ import annotations

import statistics


def seed_summary(runs: list[dict[str, float]]) -> dict[str, dict]:
    """key -> {"mean", "std" (population), "per_seed"} over runs that share their keys."""
    return {k: {"mean": statistics.mean(r[k] for r in runs), "std": statistics.pstdev(r[k] for r in runs),
                "per_seed": [r[k] for r in runs]} for k in runs[0]}
