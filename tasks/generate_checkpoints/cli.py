"""Generative models of checkpoints (G.pt) with the reference and the equivariant denoiser, evaluated honestly.

Peebles et al., *Learning to Learn with Generative Models of Neural Network Checkpoints*
(2022), on a trajectory zoo of small classifiers (built when missing: scikit-learn's
digits, MLPs with the zoo's sampled hyperparameters, checkpoints every `--every` steps).
Runs are split by run: the zoo's train runs train the generators (forward pairs within a
run, conditioned on test loss), its val and test runs are held out. Both denoisers
(`transformer`, the G.pt reference; `equivariant`, ours) train at one budget (same steps,
batch, learning rate, pairs and seed), are prompted from held-out inits at quantiles of the
training checkpoints' test loss, and are measured against: the prompts (achieved loss and
error, Pearson / Spearman, MAE), tuned Adam from the same init (steps to reach the
generated loss; the zoo's own recipe from that init too), and the memorization checks of
Zeng et al. (2026): distance to the nearest training checkpoint after alignment vs
held-out real checkpoints of similar loss, and the baselines nearest training checkpoint
+ matched noise and the average of aligned training checkpoints near the prompt.

    weightspace run generate-checkpoints [--out results/generate_checkpoints]
    weightspace run generate-checkpoints --runs 4096 --steps 4000 --inits 128   # a bigger run
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict
from pathlib import Path

import torch


def add_arguments(p: argparse.ArgumentParser) -> None:
    z = p.add_argument_group("trajectory zoo (built when --zoo has no manifest)")
    z.add_argument("--zoo", type=Path, default=None, help="zoo directory (default OUT/zoo)")
    z.add_argument("--dataset", default="digits", help="digits or mnist1d")
    z.add_argument("--arch", choices=("mlp", "cnn"), default="mlp")
    z.add_argument("--runs", type=int, default=1024, help="training runs in the zoo (70%% train, 30%% held out)")
    z.add_argument("--width", type=int, default=16, help="maximum hidden width of the runs")
    z.add_argument("--epochs", type=int, default=8, help="maximum epochs of the runs (sampled per run)")
    z.add_argument("--every", type=int, default=19, help="store a checkpoint every this many steps")
    z.add_argument("--zoo-seed", type=int, default=0)
    g = p.add_argument_group("generators (one budget for both)")
    g.add_argument("--denoisers", nargs="+", choices=("transformer", "equivariant"), default=["transformer", "equivariant"])
    g.add_argument("--steps", type=int, default=500, help="training steps of each denoiser")
    g.add_argument("--batch", type=int, default=64, help="pairs per training step")
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--hidden", type=int, default=None, help="denoiser width (default: the library's)")
    g.add_argument("--layers", type=int, default=None, help="denoiser depth (default: the library's)")
    g.add_argument("--seed", type=int, default=0)
    e = p.add_argument_group("evaluation")
    e.add_argument("--inits", type=int, default=48, help="held-out inits to prompt from")
    e.add_argument("--quantiles", type=float, nargs="+", default=[0.02, 0.1, 0.25, 0.5, 0.75],
                   help="prompts: these quantiles of the training checkpoints' test loss")
    e.add_argument("--sample-steps", type=int, default=None, help="diffusion sampling steps (default: the library's)")
    e.add_argument("--adam-lrs", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2, 3e-2, 1e-1], help="Adam's tuning grid")
    e.add_argument("--adam-steps", type=int, default=600, help="Adam's step cap")
    e.add_argument("--adam-every", type=int, default=5, help="evaluate Adam's loss every this many steps")
    e.add_argument("--refine", type=int, default=8, help="nearest candidates re-aligned pairwise per checkpoint")
    e.add_argument("--average-k", type=int, default=8, help="training checkpoints averaged by the average baseline")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: two threads on a shared 2-core machine mostly spin)")
    p.add_argument("--out", type=Path, default=Path("results/generate_checkpoints"))
    p.add_argument("--quiet", action="store_true")


def finite(value):
    """`value` with every non-finite float replaced by None (strict JSON; None = not reached)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def main(args: argparse.Namespace) -> dict:
    from rich.console import Console

    from weightspace.io.save import write_json
    from zoo.storage import MANIFEST

    from .data import ZooSettings, ensure_zoo, load_runs
    from .evaluate import prompt_grid
    from .report import plot, plot_training, table
    from .run import METRIC, Budget, Clock, EvalSettings, ModelSettings, config_of, evaluate_all, train_generators

    clock = Clock()
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        zoo = ZooSettings(args.dataset, args.arch, args.runs, args.width, args.epochs, args.every, args.zoo_seed)
        root = Path(args.zoo) if args.zoo is not None else out / "zoo"
        build = Clock()
        built = not (root / MANIFEST).exists()
        ensure_zoo(root, zoo, progress=not args.quiet)
        zoo_cost = build.read()
        runs = load_runs(root)
        budget = Budget(args.steps, args.batch, args.lr, args.seed)
        options = {k: v for k, v in (("hidden", args.hidden), ("layers", args.layers)) if v is not None}
        model = ModelSettings(options)
        settings = EvalSettings(args.inits, tuple(args.quantiles), args.sample_steps, tuple(args.adam_lrs),
                                args.adam_steps, args.adam_every, args.refine, args.average_k, args.seed)
        prompts = prompt_grid(runs.metrics[METRIC][runs.train], list(args.quantiles))
        models, training = train_generators(runs, list(args.denoisers), budget, model, out, progress=not args.quiet)
        evaluation = evaluate_all(runs, models, settings, prompts)
        results = {
            "config": {**config_of(budget, settings, model), "threads": args.threads, "zoo_settings": asdict(zoo)},
            "zoo": {"root": str(root), "built_now": built, "cost": zoo_cost, "runs": int(runs.metrics[METRIC].shape[0]),
                    "train_runs": len(runs.train), "heldout_runs": len(runs.heldout), "steps": runs.steps.tolist(),
                    "parameters": runs.spec.num_parameters()},
            "training": training,
            "evaluation": evaluation,
            "total": clock.read(),
        }
        results = finite(results)
        write_json(out / "results.json", results)
        plot(results, out / "achieved_vs_prompted.png")
        plot_training(results, out / "diffusion_loss.png")
        console = Console(width=200)
        console.print(table(results))
        total = results["total"]
        console.print(f"written to {out / 'results.json'} in {total['seconds']} s wall, {total['cpu_seconds']} s CPU")
        return results
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    import sys

    from tasks.jobs import run_module

    sys.exit(run_module(sys.modules[__name__]))
