"""Train each chosen editor with several seeds on one zoo; table, results.json, PNG.

References beside the editors: `identity` (no edit) and the MSE of predicting the
training split's mean edited image for every INR (what an editor that ignores its
input could reach).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from tasks.metanet_io import save_metanet
from weightspace.errors import EditError
from weightspace.io.save import write_json

from .data import EditPairs
from .models import EDITORS, WeightEditor, build_editor, editor_config
from .plots import save_rows
from .train import EditConfig, fit_editor


@dataclass
class Settings:
    """Settings shared by every editor (epochs/lr default per editor)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int | None = None
    batch_size: int = 64
    permute_flat: bool = True
    progress: bool = True


def mean_target_mse(pairs: EditPairs) -> float:
    """Test MSE of the training split's mean edited image, used for every INR."""
    mean = pairs.splits["train"].targets.mean(0, keepdim=True)
    return float(((pairs.splits["test"].targets - mean) ** 2).mean())


def train_one(name: str, pairs: EditPairs, seed: int, settings: Settings) -> dict:
    """One editor, one seed: test MSE of the best-validation epoch, and its curves."""
    choice = EDITORS[name]
    torch.manual_seed(seed)
    editor = build_editor(name, pairs.context)
    epochs = 0 if not choice.trainable else (settings.epochs if settings.epochs is not None else choice.epochs)
    cfg = EditConfig(epochs=epochs, batch_size=settings.batch_size, lr=choice.lr, seed=seed,
                     permute=settings.permute_flat and name.startswith("flat"), progress=settings.progress)
    s = pairs.splits
    result = fit_editor(editor, s["train"], s["val"], cfg, test=s["test"], desc=f"{name} seed {seed}")
    return {"test_mse": result.test, "val_mse": result.best_val, "best_epoch": result.best_epoch,
            "seconds": result.seconds, "params": sum(p.numel() for p in editor.parameters()),
            "val_curve": result.curves["val"], "editor": editor}


def compare(pairs: EditPairs, names: list[str], settings: Settings, out: Path, console: Console | None = None) -> dict:
    """Run the comparison; write results.json, examples.png and the trained editors into `out`."""
    console = console or Console()
    unknown = [n for n in names if n not in EDITORS]
    if unknown:
        raise EditError(f"unknown editors {unknown}; choose from {sorted(EDITORS)}")
    out.mkdir(parents=True, exist_ok=True)
    models, best_editors = {}, {}
    for name in names:
        runs = [train_one(name, pairs, seed, settings) for seed in settings.seeds]
        best = min(runs, key=lambda r: r["val_mse"])
        best_editors[name] = best["editor"]
        if EDITORS[name].trainable:
            save_metanet(out / "models" / f"{name}.safetensors", best["editor"], editor_config(name, pairs.context))
        mses = [r["test_mse"] for r in runs]
        models[name] = {
            "test_mse_mean": statistics.fmean(mses),
            "test_mse_std": statistics.pstdev(mses),
            "test_mse": mses,
            "val_mse": [r["val_mse"] for r in runs],
            "best_epoch": [r["best_epoch"] for r in runs],
            "params": runs[0]["params"],
            "train_seconds_mean": statistics.fmean(r["seconds"] for r in runs),
            "seeds": list(settings.seeds),
            "val_curves": [r["val_curve"] for r in runs],
        }
    results = {"dataset": pairs.dataset, "edit": pairs.context.edit, "source": pairs.source,
               "sizes": {k: len(v) for k, v in pairs.splits.items()},
               "reference_mean_target_mse": mean_target_mse(pairs), "models": models}
    write_json(out / "results.json", results)
    examples(pairs, best_editors, out / "examples.png")
    console.print(table(results))
    return results


@torch.no_grad()
def examples(pairs: EditPairs, editors: dict[str, WeightEditor], path: Path, rows: int = 6) -> Path:
    """Test INRs: the input's render, the edited target, and each editor's output."""
    w, target = pairs.splits["test"].take(torch.arange(min(rows, len(pairs.splits["test"]))))
    render = pairs.context.render
    columns = {"input": render(w), f"target ({pairs.context.edit})": target}
    columns.update({name: render(e.eval()(w)) for name, e in editors.items() if EDITORS[name].trainable})
    return save_rows(path, columns, pairs.context.grid, rows)


def table(results: dict) -> Table:
    t = Table(title=f"INR editing: {results['edit']} on {results['dataset']} (test MSE, lower is better; "
                    f"mean-image reference {results['reference_mean_target_mse']:.4f})")
    for col in ("editor", "test MSE", "params", "train s"):
        t.add_column(col)
    for name, m in results["models"].items():
        t.add_row(name, f"{m['test_mse_mean']:.4f} ± {m['test_mse_std']:.4f}", str(m["params"]),
                  f"{m['train_seconds_mean']:.0f}")
    return t
