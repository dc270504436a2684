"""Compare learned rules with tuned Adam and SGD-momentum on held-out task families.

Protocol:
1. Tune: Adam and SGD-momentum (0.9) learning rates are chosen on the meta-training
   family (its own task seeds, the meta-training horizon) by the same objective
   meta-training lowers: the mean minibatch training loss over the run.
2. Evaluate: every optimizer trains the same tasks (paired seeds: same init, same
   minibatches) of each held-out family; we record the minibatch loss at every
   step, the full training loss at several step counts, and the final test
   accuracy. An Adam oracle picks, per held-out family, the best grid LR in
   hindsight on those very tasks.
3. Overhead: the wall time of `optimizer.step()` over Adam's, measured in the same run.

Learned rules run through `weightspace.lopt.LearnedOptimizer` with the task's spec,
exactly as a user would call them. A UNF rule fits one architecture shape; on
other families its entry reads "n/a".
"""
from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from weightspace.errors import LoptError, SpecError
from weightspace.io.save import write_atomic, write_json
from weightspace.lopt import LearnedOptimizer, LearnedRule, load_rule

from .families import FAMILIES, Task

ADAM_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
SGDM_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
EVAL_SEED = 1_000_000

MakeOpt = Callable[[nn.Module, Task], torch.optim.Optimizer]


@dataclass
class EvalConfig:
    """What to compare and where (`families` entries are "name" or "name@steps")."""

    rules: dict[str, str] = field(default_factory=dict)
    families: tuple[str, ...] = (
        "mlp-digits", "mlp-digits-wide", "mlp-digits-deep", "mlp-mnist1d", "cnn-digits", "char-mlp", "mlp-digits@1000",
    )
    steps: int = 300
    seeds: int = 3
    tune_family: str = "mlp-digits"
    tune_steps: int = 150
    tune_seeds: int = 3
    record: tuple[int, ...] = (50, 100, 300, 1000)


@dataclass
class Run:
    """One optimizer on one task: curves and summaries."""

    losses: list[float]
    full_loss: dict[int, float]
    test_acc: float
    step_seconds: float
    diverged: bool


def train(task: Task, make_opt: MakeOpt, steps: int, record: tuple[int, ...]) -> Run:
    """Train the task's model with the optimizer `make_opt` builds; stop early on a non-finite loss."""
    model = copy.deepcopy(task.model)
    model.load_state_dict(task.init_params())
    opt = make_opt(model, task)
    losses, full, spent = [], {}, 0.0
    diverged = False
    for t in range(steps):
        x, y = task.batch(t)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        if not torch.isfinite(loss):
            diverged = True
            break
        loss.backward()
        start = time.perf_counter()
        opt.step()
        spent += time.perf_counter() - start
        losses.append(loss.item())
        if t + 1 in record:
            full[t + 1] = task.evaluate(dict(model.state_dict()))[0]
    test_acc = 0.0 if diverged else task.evaluate(dict(model.state_dict()))[1]
    if diverged:
        losses += [float("nan")] * (steps - len(losses))
        full.update({r: float("nan") for r in record if r <= steps})
    return Run(losses, full, test_acc, spent / max(len(losses), 1), diverged)


def adam(lr: float) -> MakeOpt:
    return lambda model, task: torch.optim.Adam(model.parameters(), lr=lr)


def sgdm(lr: float) -> MakeOpt:
    return lambda model, task: torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def learned(rule: LearnedRule) -> MakeOpt:
    return lambda model, task: LearnedOptimizer(model.named_parameters(), rule, spec=task.spec)


def _score(runs: list[Run]) -> float:
    """Mean minibatch loss over the run, averaged over tasks; inf if any diverged."""
    if any(r.diverged for r in runs):
        return math.inf
    return statistics.fmean(statistics.fmean(r.losses) for r in runs)


def tune(grid: tuple[float, ...], make: Callable[[float], MakeOpt], tasks: list[Task], steps: int) -> tuple[float, dict]:
    """The grid LR with the lowest mean training loss on `tasks`, and every LR's score."""
    scores = {lr: _score([train(t, make(lr), steps, ()) for t in tasks]) for lr in grid}
    return min(scores, key=scores.get), scores


def _family_steps(entry: str, default: int) -> tuple[str, int]:
    name, _, steps = entry.partition("@")
    return name, int(steps) if steps else default


def _summary(runs: list[Run]) -> dict:
    ok = [r for r in runs if not r.diverged]
    out = {"diverged": sum(r.diverged for r in runs), "n": len(runs)}
    if not ok:
        return out
    records = sorted(ok[0].full_loss)
    out["full_loss"] = {str(s): statistics.fmean(r.full_loss[s] for r in ok) for s in records}
    out["test_acc"] = statistics.fmean(r.test_acc for r in ok)
    out["test_acc_sd"] = statistics.pstdev([r.test_acc for r in ok])
    out["step_ms"] = 1e3 * statistics.median(r.step_seconds for r in ok)
    out["curve"] = [statistics.fmean(vals) for vals in zip(*(r.losses for r in ok))]
    return out


def evaluate(config: EvalConfig, progress: Callable[[str], None] = print) -> dict:
    """Run the whole comparison; returns a JSON-serializable results dict."""
    cpu0 = time.process_time()
    rules = {name: load_rule(path) for name, path in config.rules.items()}
    tune_fam = FAMILIES.get(config.tune_family)
    tune_tasks = [tune_fam.sample(EVAL_SEED // 2 + i) for i in range(config.tune_seeds)]
    adam_lr, adam_scores = tune(ADAM_GRID, adam, tune_tasks, config.tune_steps)
    sgdm_lr, sgdm_scores = tune(SGDM_GRID, sgdm, tune_tasks, config.tune_steps)
    progress(f"tuned on {config.tune_family}: Adam lr={adam_lr:g}, SGD-momentum lr={sgdm_lr:g}")
    results = {"config": asdict(config), "tuned": {"adam": adam_lr, "sgdm": sgdm_lr,
               "adam_scores": {str(k): v for k, v in adam_scores.items()},
               "sgdm_scores": {str(k): v for k, v in sgdm_scores.items()}}, "families": {}}
    for entry in config.families:
        name, steps = _family_steps(entry, config.steps)
        if name not in FAMILIES.available():
            progress(f"skip {name}: its data package is not installed")
            continue
        fam = FAMILIES.get(name)
        tasks = [fam.sample(EVAL_SEED + i) for i in range(config.seeds)]
        record = tuple(r for r in config.record if r <= steps) + ((steps,) if steps not in config.record else ())
        oracle_lr, _ = tune(ADAM_GRID, adam, tasks, steps)
        makers: dict[str, MakeOpt] = {"adam": adam(adam_lr), "sgdm": sgdm(sgdm_lr), "adam-oracle": adam(oracle_lr)}
        makers.update({k: learned(r) for k, r in rules.items()})
        fam_out = {"steps": steps, "tasks": [t.name for t in tasks], "oracle_lr": oracle_lr, "optimizers": {}}
        for opt_name, make in makers.items():
            try:
                runs = [train(t, make, steps, record) for t in tasks]
            except (SpecError, LoptError) as err:
                fam_out["optimizers"][opt_name] = {"n/a": str(err)}
                continue
            fam_out["optimizers"][opt_name] = _summary(runs)
        adam_ms = fam_out["optimizers"]["adam"].get("step_ms")
        for summary in fam_out["optimizers"].values():
            if "step_ms" in summary and adam_ms:
                summary["overhead_vs_adam"] = summary["step_ms"] / adam_ms
        results["families"][entry] = fam_out
        progress(table_rows(entry, fam_out))
    results["cpu_seconds"] = time.process_time() - cpu0
    return results


def table_rows(entry: str, fam: dict) -> str:
    lines = []
    for opt, s in fam["optimizers"].items():
        if "n/a" in s:
            lines.append(f"| {entry} | {opt} | n/a (other architecture) | | | |")
            continue
        if "full_loss" not in s:
            lines.append(f"| {entry} | {opt} | diverged {s['diverged']}/{s['n']} | | | |")
            continue
        losses = " / ".join(f"{v:.3f}" for v in s["full_loss"].values())
        div = f" ({s['diverged']} diverged)" if s["diverged"] else ""
        lines.append(
            f"| {entry} | {opt} | {losses}{div} | {100 * s['test_acc']:.1f} ± {100 * s['test_acc_sd']:.1f} "
            f"| {s['step_ms']:.2f} | {s.get('overhead_vs_adam', float('nan')):.1f}× |"
        )
    return "\n".join(lines)


def markdown(results: dict) -> str:
    head = ("| family | optimizer | train loss at " + "/".join(map(str, results["config"]["record"]))
            + " (≤ steps) | test acc % | step ms | step / Adam step |\n|---|---|---|---|---|---|")
    return "\n".join([head] + [table_rows(e, f) for e, f in results["families"].items()])


def plot(results: dict, path: str | Path) -> Path:
    """Log-scale minibatch-loss curves (mean over tasks, smoothed), one panel per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = list(results["families"].items())
    cols = min(4, len(fams))
    rows = math.ceil(len(fams) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, (entry, fam) in zip(axes.flat, fams):
        for opt, s in fam["optimizers"].items():
            curve = s.get("curve")
            if not curve:
                continue
            t = torch.tensor(curve)
            k = max(1, len(curve) // 50)
            smooth = torch.nn.functional.avg_pool1d(t[None, None], k, stride=1).flatten() if k > 1 else t
            ax.plot(range(k, len(curve) + 1), smooth.tolist(), label=opt, lw=1.2)
        ax.set_yscale("log")
        ax.set_title(entry, fontsize=9)
        ax.set_xlabel("step")
    for ax in list(axes.flat)[len(fams):]:
        ax.axis("off")
    axes.flat[0].set_ylabel("train minibatch loss")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_results(results: dict, folder: str | Path) -> dict[str, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "results.json", "md": folder / "results.md", "png": folder / "curves.png"}
    write_json(paths["json"], results)
    text = markdown(results) + "\n"
    write_atomic(paths["md"], lambda tmp: tmp.write_text(text))
    plot(results, paths["png"])
    return paths
