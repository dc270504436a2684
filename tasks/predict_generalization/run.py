"""Train each chosen regressor with several seeds on one classifier zoo; report the
test-split Kendall τ and R² of predicted vs recorded accuracy (table, JSON, scatter PNG)."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from tasks.training import FitConfig, fit, kendall_tau, predict, r_squared
from weightspace.errors import SpecError
from weightspace.io.save import write_atomic, write_json

from .data import GeneralizationData
from .models import CHOICES, Choice


@dataclass
class Settings:
    """Training settings shared by every model; None keeps each model's default."""

    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int | None = None
    batch_size: int | None = None
    weight_decay: float = 1e-4
    threads: int | None = None
    progress: bool = True


def train_one(choice: Choice, data: GeneralizationData, seed: int, settings: Settings) -> dict:
    """One model, one seed: the best-validation-τ state's test predictions and scores."""
    prepare = choice.prepare(data)
    torch.manual_seed(seed)
    model = choice.build(data)
    cfg = FitConfig(epochs=settings.epochs or choice.epochs, batch_size=settings.batch_size or choice.batch_size,
                    lr=choice.lr, weight_decay=settings.weight_decay, seed=seed, progress=settings.progress)
    result = fit(model, data.splits["train"], data.splits["val"], cfg, task="regress", prepare=prepare,
                 desc=f"{choice.name} seed {seed}")
    pred = data.scale.invert(predict(model, data.splits["test"], prepare).squeeze(-1)).numpy()
    true = data.true("test").numpy()
    return {"kendall_tau": kendall_tau(pred, true), "r2": r_squared(pred, true), "val_tau": result.best_val,
            "best_epoch": result.best_epoch, "seconds": result.seconds,
            "params": sum(p.numel() for p in model.parameters()), "pred": pred.tolist(),
            "val_curve": result.curves["val"], "loss_curve": result.curves["train_loss"]}


def _summary(runs: list[dict], seeds: tuple[int, ...]) -> dict:
    taus, r2s = [r["kendall_tau"] for r in runs], [r["r2"] for r in runs]
    return {
        "kendall_tau_mean": statistics.fmean(taus), "kendall_tau_std": statistics.pstdev(taus),
        "r2_mean": statistics.fmean(r2s), "r2_std": statistics.pstdev(r2s),
        "val_tau_mean": statistics.fmean(r["val_tau"] for r in runs),
        "params": runs[0]["params"], "train_seconds_mean": statistics.fmean(r["seconds"] for r in runs),
        "seeds": list(seeds), "kendall_tau": taus, "r2": r2s, "best_epoch": [r["best_epoch"] for r in runs],
        "test_pred": [r["pred"] for r in runs],
        "curves": {"val_tau": [r["val_curve"] for r in runs], "train_loss": [r["loss_curve"] for r in runs]},
    }


def _print_one(console: Console, name: str, m: dict) -> None:
    console.print(f"{name}: test τ {m['kendall_tau_mean']:.3f} ± {m['kendall_tau_std']:.3f}, "
                  f"R² {m['r2_mean']:.3f} ± {m['r2_std']:.3f}")


def compare(data: GeneralizationData, names: list[str], settings: Settings, out: Path, console: Console | None = None) -> dict:
    """Run the comparison; write results.json and scatter.png into `out`; return the results."""
    console = console or Console()
    unknown = [n for n in names if n not in CHOICES]
    if unknown:
        raise SpecError(f"unknown models {unknown}; choose from {sorted(CHOICES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models = {}
    threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        for name in names:
            models[name] = _summary([train_one(CHOICES[name], data, s, settings) for s in settings.seeds], settings.seeds)
            _print_one(console, name, models[name])
    finally:
        torch.set_num_threads(threads)
    true = data.true("test")
    results = {"dataset": data.dataset, "arch": data.arch, "zoo": str(data.root), "target": data.target,
               "sizes": {k: len(v) for k, v in data.splits.items()},
               "target_stats": {"mean": float(true.mean()), "std": float(true.std()), "min": float(true.min()),
                                "max": float(true.max())},
               "test_true": true.tolist(), "models": models}
    write_json(out / "results.json", results)
    plot_scatter(results, out / "scatter.png")
    console.print(table(results))
    return results


def table(results: dict) -> Table:
    t = Table(title=f"Generalization prediction — {results['arch']} zoo on {results['dataset']} "
                    f"({results['sizes']['test']} test networks)")
    for col in ("model", "Kendall τ", "R²", "params", "train s / seed"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for name, m in results["models"].items():
        t.add_row(name, f"{m['kendall_tau_mean']:.3f} ± {m['kendall_tau_std']:.3f}",
                  f"{m['r2_mean']:.3f} ± {m['r2_std']:.3f}", f"{m['params']:,}", f"{m['train_seconds_mean']:.1f}")
    return t


def plot_scatter(results: dict, path: Path) -> None:
    """One panel per model: predicted (mean over seeds) vs true test accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["models"])
    true = np.asarray(results["test_true"])
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    lo, hi = float(true.min()), float(true.max())
    for ax, name in zip(axes.flat, names):
        m = results["models"][name]
        pred = np.asarray(m["test_pred"]).mean(0)
        ax.scatter(true, pred, s=10, alpha=0.7)
        ax.plot([lo, hi], [lo, hi], color="gray", lw=1, ls="--")
        ax.set_title(f"{name}\nτ {m['kendall_tau_mean']:.3f}  R² {m['r2_mean']:.3f}", fontsize=9)
        ax.set_xlabel(f"true {results['target']}")
        ax.set_ylabel("predicted")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
