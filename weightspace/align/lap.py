"""Linear assignment (Kuhn–Munkres / Jonker–Volgenant via scipy) as a permutation."""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def best_permutation(score: torch.Tensor) -> torch.Tensor:
    """The permutation p maximizing sum_i score[i, p[i]], as a LongTensor."""
    matrix = score.detach().to(torch.float64).cpu().numpy()
    if not np.isfinite(matrix).all():
        matrix = np.nan_to_num(matrix, nan=0.0, posinf=np.finfo(np.float64).max / 4, neginf=-np.finfo(np.float64).max / 4)
    _, cols = linear_sum_assignment(matrix, maximize=True)
    return torch.from_numpy(cols.astype(np.int64))


def assignment_value(score: torch.Tensor) -> float:
    """max over permutations p of sum_i score[i, p[i]]."""
    p = best_permutation(score)
    return float(score.to(torch.float64).gather(1, p.unsqueeze(1)).sum())
