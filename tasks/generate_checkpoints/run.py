"""The experiment: train both denoisers at one budget on the training runs, prompt them from held-out
inits, and measure prompting, the Adam budget, memorization and the two baselines."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from . import memorization as mem
from .adam_budget import adam_curves, steps_to_reach, summarize_steps, tuned_budget
from .data import TrajectoryRuns, data_splits
from .evaluate import loss_and_error, prompting

METRIC = "test_loss"  # what the generators condition on and are prompted with (G.pt's MNIST setting)


@dataclass(frozen=True)
class Budget:
    """The training budget both denoisers get: the same steps, batch, learning rate, data and seed."""

    steps: int = 500
    batch: int = 64
    lr: float = 1e-3
    seed: int = 0


@dataclass(frozen=True)
class EvalSettings:
    """Held-out inits, prompts (quantiles of the training checkpoints' test loss), and the references' sizes."""

    inits: int = 48
    quantiles: tuple[float, ...] = (0.02, 0.1, 0.25, 0.5, 0.75)
    sample_steps: int | None = None
    adam_lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    adam_steps: int = 600
    adam_every: int = 5
    refine: int = 8
    average_k: int = 8
    seed: int = 0


@dataclass(frozen=True)
class ModelSettings:
    """Options of `CheckpointDiffusion` shared by both denoisers (empty: the library's defaults)."""

    options: dict = field(default_factory=dict)


class Clock:
    """Wall and process CPU seconds since it was made (CPU counts every thread of this process)."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> dict[str, float]:
        return {"seconds": round(time.perf_counter() - self.wall, 2), "cpu_seconds": round(time.process_time() - self.cpu, 2)}


def _repeat(stack: dict[str, torch.Tensor], times: int) -> dict[str, torch.Tensor]:
    return {k: v.repeat(times, *([1] * (v.dim() - 1))) for k, v in stack.items()}


def _grid(values: torch.Tensor, prompts: int) -> torch.Tensor:
    """(P * I,) prompt-major values as (P, I)."""
    return values.reshape(prompts, -1)


def fixed_loss(net, pairs, count: int = 256, seed: int = 0) -> float:
    """The diffusion loss on a fixed subset of `pairs` (the same pairs, times and noise on every call)."""
    index = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed))[:count]
    with torch.no_grad():
        return float(net.loss(pairs[index], generator=torch.Generator().manual_seed(seed + 1)))


def train_generators(runs: TrajectoryRuns, denoisers: list[str], budget: Budget, model: ModelSettings, out: Path,
                     progress: bool) -> tuple[dict, dict]:
    """Both denoisers on the training runs' forward pairs at one budget; (models, their records).

    Each record has the training loss (its first and last tenth, and every step) and the
    diffusion loss on fixed training pairs and on fixed held-out pairs, before and after training.
    """
    from weightspace.generate import CheckpointDiffusion, CheckpointPairs, save_generator, train_generator

    pairs = CheckpointPairs.from_trajectories(runs.spec, runs.runs(runs.train), runs.metrics[METRIC][runs.train])
    held = CheckpointPairs.from_trajectories(runs.spec, runs.runs(runs.heldout), runs.metrics[METRIC][runs.heldout])
    models, records = {}, {}
    for name in denoisers:
        clock = Clock()
        torch.manual_seed(budget.seed)
        net = CheckpointDiffusion(runs.spec, denoiser=name, **model.options)
        net.fit_normalizer(pairs)
        before = {"train": fixed_loss(net, pairs, seed=budget.seed), "heldout": fixed_loss(net, held, seed=budget.seed)}
        history = train_generator(net, pairs, steps=budget.steps, batch=budget.batch, lr=budget.lr, seed=budget.seed,
                                  progress=progress)
        net.eval()
        save_generator(out / f"{name}.safetensors", net)
        tail = max(1, len(history) // 10)
        records[name] = {"params": sum(p.numel() for p in net.parameters()), "settings": dict(net.settings),
                         "train": clock.read(),
                         "diffusion_loss": {"first": sum(history[:tail]) / tail, "last": sum(history[-tail:]) / tail,
                                            "fixed_train_before": before["train"],
                                            "fixed_train_after": fixed_loss(net, pairs, seed=budget.seed),
                                            "heldout_before": before["heldout"],
                                            "heldout_after": fixed_loss(net, held, seed=budget.seed),
                                            "history": history}}
        models[name] = net
    return models, {"pairs": len(pairs), "heldout_pairs": len(held), "denoisers": records}


def sample_from(net, init: dict, init_metric: torch.Tensor, prompts: torch.Tensor, settings: EvalSettings) -> dict:
    """One generated checkpoint per (prompt, init), prompt-major: key -> (P * I, *shape)."""
    p = len(prompts)
    gen = torch.Generator().manual_seed(settings.seed)
    options = {} if settings.sample_steps is None else {"steps": settings.sample_steps}
    with torch.no_grad():
        out = net.sample(_repeat(init, p), init_metric.repeat(p), prompts.repeat_interleave(len(init_metric)),
                         generator=gen, **options)
    return {k: v.detach() for k, v in out.items()}


def _distances(found: mem.Nearest, prompts: int) -> dict:
    aligned, unaligned = _grid(found.aligned, prompts), _grid(found.unaligned, prompts)
    return {"aligned_mean": float(aligned.mean()), "unaligned_mean": float(unaligned.mean()),
            "aligned_per_prompt": aligned.mean(1).tolist(), "unaligned_per_prompt": unaligned.mean(1).tolist()}


def _scores(runs: TrajectoryRuns, points: dict, test, prompts: torch.Tensor, bank: mem.Bank,
            refine: int) -> tuple[dict, torch.Tensor]:
    """Prompting scores and memorization distances of checkpoints made per prompt (prompt-major),
    and their loss as (P, per prompt)."""
    loss, err = loss_and_error(runs.cfg, points, test)
    p = len(prompts)
    found = mem.nearest_checkpoint(runs.spec, points, bank, refine)
    return {"prompting": prompting(prompts, _grid(loss, p), _grid(err, p)), "memorization": _distances(found, p)}, _grid(loss, p)


def evaluate_all(runs: TrajectoryRuns, models: dict, settings: EvalSettings, prompts: torch.Tensor) -> dict:
    """Every measurement of the job, from the first `settings.inits` held-out runs' inits."""
    sets = data_splits(runs.dataset)
    test, p = sets["test"], len(prompts)
    chosen = runs.heldout[: settings.inits]
    init = {k: v[chosen, 0] for k, v in runs.weights.items()}
    init_metric = runs.metrics[METRIC][chosen, 0]
    count = len(chosen)
    bank_points, bank_metrics = runs.flat(runs.train)
    bank_metric = bank_metrics[METRIC]
    reference_run = int(runs.train[0])
    clock = Clock()
    bank = mem.Bank.build(runs.spec, bank_points, {k: v[reference_run, -1].unsqueeze(0) for k, v in runs.weights.items()})
    alignment = {"bank_checkpoints": len(bank_metric), "reference": f"final checkpoint of training run {reference_run}",
                 "refine": settings.refine, "bank_cost": clock.read()}
    clock = Clock()
    curves = adam_curves(runs.cfg, init, sets["train"], test, list(settings.adam_lrs), settings.adam_steps,
                         settings.adam_every, seed=settings.seed)
    to_prompt = tuned_budget(curves, prompts.unsqueeze(1).expand(p, count))
    adam = {"lrs": list(settings.adam_lrs), "max_steps": settings.adam_steps, "every": settings.adam_every, "batch": 64,
            "cost": clock.read(), "to_prompt": {"lr": to_prompt["lr"], **summarize_steps(to_prompt["steps"]),
                                                "median_per_prompt": to_prompt["steps"].median(1).values.tolist()}}
    zoo_curve = runs.metrics[METRIC][chosen].unsqueeze(0).expand(p, -1, -1)
    generators, baselines = {}, {}
    for name, net in models.items():
        clock = Clock()
        made = sample_from(net, init, init_metric, prompts, settings)
        cost = clock.read()
        score, achieved = _scores(runs, made, test, prompts, bank, settings.refine)
        budget = tuned_budget(curves, achieved)
        generators[name] = {**score, "sample_cost": cost,
                            "adam": {"lr": budget["lr"], "median_per_lr": budget["median_per_lr"],
                                     **summarize_steps(budget["steps"]),
                                     "median_per_prompt": budget["steps"].median(1).values.tolist()},
                            "zoo_recipe": summarize_steps(steps_to_reach(runs.steps, zoo_curve, achieved))}
        radius = torch.tensor(score["memorization"]["aligned_per_prompt"])
        noisy = mem.noisy_nearest(bank, bank_metric, prompts, radius, count, torch.Generator().manual_seed(settings.seed))
        noisy_score = _scores(runs, noisy, test, prompts, bank, settings.refine)[0]
        baselines[f"nearest_noise_{name}"] = {**noisy_score, "radius_per_prompt": radius.tolist()}
    average = _scores(runs, mem.averaged(bank, bank_metric, prompts, settings.average_k), test, prompts, bank,
                      settings.refine)[0]
    baselines["average"] = {**average, "k": settings.average_k}
    real = _scores(runs, heldout_similar(runs, prompts, count), test, prompts, bank, settings.refine)[0]
    return {"heldout_inits": count, "prompts": prompts.tolist(), "generators": generators, "baselines": baselines,
            "heldout_real": real, "adam": adam, "alignment": alignment}


def heldout_similar(runs: TrajectoryRuns, prompts: torch.Tensor, count: int) -> dict:
    """Per prompt, the `count` held-out checkpoints (after the init) closest to it in metric: (P * count, *shape)."""
    weights = {k: v[runs.heldout, 1:].flatten(0, 1) for k, v in runs.weights.items()}
    metric = runs.metrics[METRIC][runs.heldout, 1:].flatten()
    index = mem.closest_by_metric(metric, prompts, min(count, len(metric))).flatten()
    return {k: v[index] for k, v in weights.items()}


def config_of(budget: Budget, settings: EvalSettings, model: ModelSettings) -> dict:
    return {"budget": asdict(budget), "evaluation": asdict(settings), "model_options": dict(model.options), "metric": METRIC}

