"""CCA Merge (Horoi et al. 2024, "Harmony in Diversity: Merging Neural Networks with Canonical Correlation Analysis").

Per group, canonical correlation analysis of the anchor's (model 0) units X_0 and
model k's units X_k finds P_0, P_k making X_0 P_0 and X_k P_k maximally correlated;
T_k = P_k P_0^{-1} maps model k's units into the anchor's (X_k T_k ≈ X_0), a linear
map instead of a permutation. Every model is mapped into the anchor's space and the
results averaged: merge block k = T_kᵀ / K, unmerge block k = T_k^{-ᵀ} (so M U = I).
Covariances are ridge-regularized by `reg` times their mean variance.
"""
from __future__ import annotations

import torch

from .feature_maps import GroupMerge


def _inv_sqrt(cov: torch.Tensor, reg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ^{-1/2}, Σ^{1/2}) of a ridge-regularized symmetric covariance."""
    n = cov.shape[0]
    ridge = reg * float(torch.diagonal(cov).mean().clamp_min(1e-12))
    vals, vecs = torch.linalg.eigh((cov + cov.T) / 2 + ridge * torch.eye(n, dtype=cov.dtype))
    vals = vals.clamp_min(ridge)
    return (vecs * vals.rsqrt()) @ vecs.T, (vecs * vals.sqrt()) @ vecs.T


def cca_transform(cov_00: torch.Tensor, cov_kk: torch.Tensor, cov_0k: torch.Tensor, reg: float = 1e-6) -> torch.Tensor:
    """T_k (n × n) with X_k T_k ≈ X_0, from the covariances of X_0, X_k and their cross-covariance."""
    inv_0, sqrt_0 = _inv_sqrt(cov_00, reg)
    inv_k, _ = _inv_sqrt(cov_kk, reg)
    u, _, vh = torch.linalg.svd(inv_0 @ cov_0k @ inv_k)
    return inv_k @ vh.T @ u.T @ sqrt_0


def cca_matrices(transforms: list[torch.Tensor]) -> GroupMerge:
    """Merge/unmerge matrices averaging every model mapped into the anchor's units (transforms[0] = I)."""
    k = len(transforms)
    merge = torch.cat([t.T / k for t in transforms], 1)
    unmerge = torch.cat([torch.linalg.inv(t.T) for t in transforms], 0)
    return GroupMerge(merge, unmerge)
