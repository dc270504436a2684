"""Train each chosen model with several seeds on one INR zoo; table, JSON and PNG."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from rich.console import Console
from tqdm.auto import tqdm
from rich.table import Table

from tasks.metanet_io import save_metanet
from tasks.training import FitConfig, fit
from weightspace import augment as A
from weightspace.errors import ConfigError, UnknownNameError
from weightspace.io.save import write_atomic, write_json

from .data import InrSplits
from .models import CHOICES, Choice


@dataclass
class Settings:
    """Training settings shared by every model (epochs/lr default per model)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int | None = None
    batch_size: int = 64
    weight_decay: float = 1e-4
    progress: bool = True
    workers: int = 1
    augment: str | None = None


PARTS = {"symmetry": A.RandomSymmetry, "bias_shift": A.SirenBiasShift, "affine": A.RandomInputAffine,
         "noise": A.GaussianNoise}


def augmentation(name: str, data: InrSplits) -> tuple[Callable | None, Callable | None]:
    """(augment, mixup) of a recipe name: "none"; "full" (`augment.inr_recipe`: random
    group element with sign flips, SIREN bias shifts, input-space affine maps, noise;
    plus mixup of weight-matching-aligned partners); or parts of it joined by "+", from
    symmetry, bias_shift, affine, noise, mixup (e.g. "symmetry", "symmetry+mixup")."""
    if name == "none":
        return None, None
    parts = set(PARTS) | {"mixup"} if name == "full" else set(name.split("+"))
    unknown = parts - set(PARTS) - {"mixup"}
    if unknown:
        raise ConfigError(f"unknown augmentation parts {sorted(unknown)} in {name!r}; use none, full or "
                         f"'+'-joined parts of {sorted(PARTS) + ['mixup']}")
    recipe = A.inr_recipe(data.spec, omega0=data.siren.w0)
    chosen = [t for t in recipe.transforms if any(isinstance(t, PARTS[p]) for p in parts - {"mixup"})]
    mixup = A.Mixup(data.spec, data.num_classes, mode="aligned") if "mixup" in parts else None
    return (A.Compose(chosen) if chosen else None), mixup


def augment_name(choice: Choice, settings: Settings) -> str:
    """The augmentation a model trains with: the settings' override, else its own; none on pixels."""
    return (settings.augment or choice.augment) if choice.reads != "pixels" else "none"


def train_one(name: str, data: InrSplits, seed: int, settings: Settings) -> dict:
    """One model, one seed: test accuracy of the best-validation epoch, its curves and
    the selected weights (a state dict, so that worker processes can return it)."""
    choice = CHOICES[name]
    splits = data.renders if choice.reads == "pixels" else data.splits
    prepare = choice.prepare(data)
    torch.manual_seed(seed)
    model = choice.build(data)
    cfg = FitConfig(epochs=settings.epochs or choice.epochs, batch_size=settings.batch_size, lr=choice.lr,
                    weight_decay=settings.weight_decay, label_smoothing=choice.label_smoothing, seed=seed,
                    progress=settings.progress)
    augment, mixup = augmentation(augment_name(choice, settings), data)
    result = fit(model, splits["train"], splits["val"], cfg, prepare=prepare, augment=augment, mixup=mixup,
                 test=splits["test"], desc=f"{choice.name} seed {seed}")
    return {"test_acc": result.test, "val_acc": result.best_val, "best_epoch": result.best_epoch,
            "seconds": result.seconds, "params": sum(p.numel() for p in model.parameters()),
            "val_curve": result.curves["val"], "loss_curve": result.curves["train_loss"], "state": result.best_state}


def _in_worker(args) -> dict:
    torch.set_num_threads(1)
    return train_one(*args)


def run_all(names: list[str], data: InrSplits, settings: Settings) -> dict[str, list[dict]]:
    """Every (model, seed) run, one torch thread each (these models' small ops run up to
    20x slower with intra-op threads on a busy 2-core machine); with workers > 1 they
    run in parallel processes."""
    jobs = [(name, data, seed, settings) for name in names for seed in settings.seeds]
    if settings.workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        quiet = Settings(**{**settings.__dict__, "progress": False})
        jobs = [(n, d, s, quiet) for n, d, s, _ in jobs]
        with ProcessPoolExecutor(settings.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            runs = pool.map(_in_worker, jobs)
            results = list(tqdm(runs, total=len(jobs), desc="runs (model × seed)", disable=not settings.progress))
    else:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            results = [train_one(*job) for job in jobs]
        finally:
            torch.set_num_threads(threads)
    out: dict[str, list[dict]] = {name: [] for name in names}
    for (name, *_), r in zip(jobs, results):
        out[name].append(r)
    return out


def save_model(path: Path, name: str, model, data: InrSplits) -> Path:
    """The trained model with the config `weightspace predict` rebuilds it from."""
    return save_metanet(path, model, {"task": "inr-classify", "model": name, **data.context().to_config()})


def compare(data: InrSplits, names: list[str], settings: Settings, out: Path, console: Console | None = None,
            write: bool = True) -> dict:
    """Run the comparison and write results.json and curves.png into `out` (with
    `write`; under torchrun every rank trains and only rank 0 writes)."""
    console = console or Console(quiet=not write)
    unknown = [n for n in names if n not in CHOICES]
    if unknown:
        raise UnknownNameError(f"unknown models {unknown}; choose from {sorted(CHOICES)}")
    if settings.augment:
        augmentation(settings.augment, data)
    models = {}
    all_runs = run_all(names, data, settings)
    for name in names:
        runs = all_runs[name]
        best = max(runs, key=lambda r: r["val_acc"])
        model = CHOICES[name].build(data)
        model.load_state_dict(best["state"])
        if write:
            save_model(out / "models" / f"{name}.safetensors", name, model, data)
        accs = [r["test_acc"] for r in runs]
        models[name] = {
            "test_acc_mean": statistics.fmean(accs),
            "test_acc_std": statistics.pstdev(accs),
            "val_acc_mean": statistics.fmean(r["val_acc"] for r in runs),
            "reads": CHOICES[name].reads,
            "params": runs[0]["params"],
            "train_seconds_mean": statistics.fmean(r["seconds"] for r in runs),
            "seeds": list(settings.seeds),
            "augment": augment_name(CHOICES[name], settings),
            "saved": {"path": str(out / "models" / f"{name}.safetensors"), "seed": settings.seeds[runs.index(best)],
                      "test_acc": best["test_acc"]},
            "test_acc": accs,
            "curves": {"val": [r["val_curve"] for r in runs], "train_loss": [r["loss_curve"] for r in runs]},
        }
        console.print(f"{name}: test {100 * models[name]['test_acc_mean']:.1f} ± {100 * models[name]['test_acc_std']:.1f}%")
    results = {"dataset": data.dataset, "recipe": data.recipe, "num_classes": data.num_classes,
               "sizes": {k: len(v) for k, v in data.splits.items()}, "models": models}
    if write:
        write_json(out / "results.json", results)
        plot_curves(models, out / "curves.png")
    console.print(table(results))
    return results


def table(results: dict) -> Table:
    t = Table(title=f"INR classification — {results['dataset']} ({results['recipe']} init)")
    for col in ("model", "test acc (mean ± std)", "params", "train s / seed"):
        t.add_column(col, justify="right" if col != "model" else "left")
    for name, m in results["models"].items():
        t.add_row(name, f"{100 * m['test_acc_mean']:.1f} ± {100 * m['test_acc_std']:.1f}%", f"{m['params']:,}",
                  f"{m['train_seconds_mean']:.1f}")
    return t


def plot_curves(models: dict, path: Path) -> None:
    """Validation accuracy per epoch, mean over seeds, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, m in models.items():
        curves = torch.tensor(m["curves"]["val"])
        ax.plot(range(1, curves.shape[1] + 1), 100 * curves.mean(0), label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
