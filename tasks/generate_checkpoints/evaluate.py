"""Achieved vs prompted loss: the prompts, the checkpoints' loss and error, and how well they agree."""
from __future__ import annotations

import torch

from zoo.classifier_nets import ClassifierConfig
from zoo.classifier_trainer import Split, evaluate


def loss_and_error(cfg: ClassifierConfig, weights: dict[str, torch.Tensor], data: Split, chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy, error) of N stacked networks (key -> (N, *shape)) on `data`, each (N,)."""
    n = weights[cfg.keys[0]].shape[0]
    losses, errors = [], []
    for s in range(0, n, chunk):
        acc, ce = evaluate(cfg, {k: weights[k][s : s + chunk] for k in cfg.keys}, data)
        losses.append(ce)
        errors.append(1 - acc)
    return torch.cat(losses), torch.cat(errors)


def prompt_grid(metric: torch.Tensor, quantiles: list[float]) -> torch.Tensor:
    """The prompts: quantiles of the training checkpoints' metric (every checkpoint after the init), (P,)."""
    return torch.quantile(metric[:, 1:].flatten().double(), torch.tensor(quantiles, dtype=torch.float64)).float()


def _pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson correlation; 0 where either side is constant."""
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denom = float(x.norm() * y.norm())
    return float((x * y).sum()) / denom if denom > 0 else 0.0


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks with ties given their mean rank (Spearman's convention)."""
    from scipy.stats import rankdata

    return torch.from_numpy(rankdata(x.double().numpy()))


def prompting(prompts: torch.Tensor, loss: torch.Tensor, error: torch.Tensor) -> dict:
    """Agreement of achieved with prompted loss; loss and error are (P, I): prompt p, start i.

    Per prompt: mean and std of the achieved loss, mean error, mean |achieved - prompt|;
    overall: Pearson and Spearman correlation of prompted with achieved loss over every
    (prompt, start) pair, and their mean absolute error.
    """
    prompted = prompts.unsqueeze(1).expand_as(loss).flatten()
    achieved = loss.flatten()
    finite = torch.isfinite(achieved)
    per_prompt = [
        {"prompt": float(p), "loss_mean": float(loss[i].mean()), "loss_std": float(loss[i].std()) if loss.shape[1] > 1 else 0.0,
         "error_mean": float(error[i].mean()), "abs_error_mean": float((loss[i] - p).abs().mean())}
        for i, p in enumerate(prompts)
    ]
    return {
        "per_prompt": per_prompt,
        "pearson": _pearson(prompted[finite], achieved[finite]),
        "spearman": _pearson(_ranks(prompted[finite]), _ranks(achieved[finite])),
        "mae": float((achieved - prompted).abs().mean()),
        "loss_mean": float(achieved.mean()),
        "error_mean": float(error.mean()),
        "finite_fraction": float(finite.float().mean()),
    }
