"""ZipIt! matching (Stoica et al. 2023, "ZipIt! Merging Models from Different Tasks without Training").

The K models' units of a group are stacked (K·n features) and their correlation
matrix is taken over data; features are merged greedily, most correlated pair first,
within a model as well as across models, until n merged features remain. Two models:
each feature is merged exactly once (the paper's algorithm). More models: clusters
grow up to K features, and past that limit only if the greedy pass could not reach n
(a fallback that always terminates). A merged feature is the mean of its cluster (M)
and every member reads it back (U).
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from .feature_maps import GroupMerge


def zip_clusters(corr: torch.Tensor, models: int, same_model: bool = True) -> list[list[int]]:
    """Clusters (stacked feature indices, sorted) of the greedy zip of a (K·n × K·n) correlation matrix.

    same_model=False forbids merging two features of one model (then, for two models,
    a greedy one-to-one matching). Clusters are ordered by their smallest member, so
    model 0's unit order is kept where it takes part.
    """
    total = corr.shape[0]
    if corr.shape != (total, total) or total % models:
        raise ConfigError(f"a correlation of shape {tuple(corr.shape)} does not stack {models} models")
    n = total // models
    owner = torch.arange(total) // n
    rows, cols = torch.triu_indices(total, total, offset=1)
    keep = owner[rows] != owner[cols] if not same_model else torch.ones(len(rows), dtype=torch.bool)
    rows, cols = rows[keep], cols[keep]
    order = torch.argsort(corr[rows, cols].double(), descending=True, stable=True)
    parent = list(range(total))
    members = {i: [i] for i in range(total)}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = list(zip(rows[order].tolist(), cols[order].tolist()))
    for cap in (models, total):
        for i, j in pairs:
            if len(members) == n:
                break
            ri, rj = find(i), find(j)
            if ri == rj or len(members[ri]) + len(members[rj]) > cap:
                continue
            if not same_model and set(owner[members[ri]].tolist()) & set(owner[members[rj]].tolist()):
                continue
            parent[rj] = ri
            members[ri] = members[ri] + members.pop(rj)
    if len(members) != n:
        raise ConfigError(f"zipping could not merge {total} features into {n}")
    return sorted((sorted(m) for m in members.values()), key=lambda m: m[0])


def zip_matrices(clusters: list[list[int]], total: int) -> GroupMerge:
    """Merge (mean of each cluster) and unmerge (each member reads its cluster) matrices."""
    merge = torch.zeros(len(clusters), total, dtype=torch.float64)
    unmerge = torch.zeros(total, len(clusters), dtype=torch.float64)
    for c, m in enumerate(clusters):
        merge[c, m] = 1.0 / len(m)
        unmerge[m, c] = 1.0
    return GroupMerge(merge, unmerge)
