"""Per-step cost of learned optimizers vs `torch.optim.Adam` on the same model, same run.

Models: a small MLP (64-64-64-10, ~9k parameters) and a ~1M-parameter MLP
(784-1024-256-10). For each, every optimizer (Adam; learned rules in the
configurations of `CONFIGS`: meta-network kind, hidden width, fused feature path or
reference path) takes `optimizer.step()` on the same gradients; rounds interleave
the optimizers (the machine may be shared) and each one's median round counts. A
full training step (forward, backward, step) is timed the same way. UNF runs on the
small model only (one step of the 1M model takes seconds).

Times are CPU seconds of this process (`--clock cpu`, default: on a shared machine the
wall clock mostly measures the other jobs) or wall seconds (`--clock wall`).

`speedup` = Adam step time / learned step time (< 1: the learned rule is slower),
headline: the spec-equivariant group-context rule at hidden 4 (fused path) on the ~1M
model. Rules are built with the default bounded learned term (`bound="relative"`).
Targets (issue 20, ~1M model): per-parameter MLP (hidden 4) >= 0.5, groups >= 0.33,
graph rule >= 0.05. Fused rules step in place (`weightspace.lopt.inplace`).
On CUDA (`--device cuda`) times are wall seconds after a synchronize.

    python -m tasks.benchmarks.lopt [--rounds 3] [--iters 2] [--threads 1] [--clock cpu|wall] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from typing import Callable

import torch
from torch import nn

import weightspace as ws
from weightspace.lopt import LearnedOptimizer, LearnedRule

TARGET = 0.33
HEADLINE = "groups-h4"
TARGETS = {"mlp-h4": 0.5, "groups-h4": 0.33, "graph-h8": 0.05}
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
# name -> (meta-network kind, hidden, fused path, also on the ~1M model)
CONFIGS: dict[str, tuple[str, int, bool, bool]] = {
    "mlp-h32-ref": ("mlp", 32, False, True),
    "mlp-h32": ("mlp", 32, True, True),
    "mlp-h4": ("mlp", 4, True, True),
    "deepset-h32": ("deepset", 32, True, True),
    "deepset-h4": ("deepset", 4, True, True),
    "groups-h32": ("groups", 32, True, True),
    "groups-h4-ref": ("groups", 4, False, True),
    "groups-h4": ("groups", 4, True, True),
    "graph-h8": ("graph", 8, True, True),
    "unf-h16": ("unf", 16, True, False),
}


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


def _optimizers(
    sizes: list[int], big: bool, device: torch.device
) -> tuple[dict[str, tuple[nn.Module, torch.optim.Optimizer]], torch.Tensor]:
    x = torch.randn(128, sizes[0])
    base = _mlp(sizes)
    spec = ws.parse(base, (x[:2],))
    names = ["adam"] + [n for n, c in CONFIGS.items() if c[3] or not big]
    out = {}
    for name in names:
        model = _mlp(sizes)
        model.load_state_dict(base.state_dict())
        model.to(device)
        if name == "adam":
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        else:
            kind, hidden, fused, _ = CONFIGS[name]
            rule = LearnedRule.build(kind, spec=spec, hidden=hidden).to(device)
            rule.fused = fused
            opt = LearnedOptimizer(model.named_parameters(), rule, spec=spec)
        out[name] = (model, opt)
    return out, x.to(device)


def _time(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, iters: int,
          clock: Callable[[], float]) -> tuple[float, float]:
    """(seconds per opt.step(), seconds per full training step)."""
    step_s = full_s = 0.0
    for _ in range(iters):
        t0 = clock()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        t1 = clock()
        opt.step()
        t2 = clock()
        step_s += t2 - t1
        full_s += t2 - t0
    return step_s / iters, full_s / iters


def bench(sizes: list[int], rounds: int, iters: int, big: bool, clock: Callable[[], float],
          device: torch.device) -> dict:
    opts, x = _optimizers(sizes, big, device)
    learned = [k for k in opts if k != "adam"]
    y = torch.randint(0, sizes[-1], (x.shape[0],)).to(device)
    params = sum(p.numel() for p in opts["adam"][0].parameters())
    for model, opt in opts.values():
        _time(model, opt, x, y, 1, clock)
    steps: dict[str, list[float]] = {k: [] for k in opts}
    fulls: dict[str, list[float]] = {k: [] for k in opts}
    for _ in range(rounds):
        for name, (model, opt) in opts.items():
            s, f = _time(model, opt, x, y, iters, clock)
            steps[name].append(s)
            fulls[name].append(f)
    med = {k: statistics.median(v) for k, v in steps.items()}
    med_full = {k: statistics.median(v) for k, v in fulls.items()}
    return {
        "params": params,
        "step_ms": {k: 1e3 * v for k, v in med.items()},
        "full_step_ms": {k: 1e3 * v for k, v in med_full.items()},
        "speedup": {k: med["adam"] / med[k] for k in learned},
        "full_step_ratio": {k: med_full["adam"] / med_full[k] for k in learned},
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (times are then synchronized wall seconds)")


def _synchronized(device: torch.device) -> Callable[[], float]:
    def clock() -> float:
        torch.cuda.synchronize(device)
        return time.perf_counter()

    return clock


def main(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    clock = _synchronized(device) if device.type == "cuda" else CLOCKS[args.clock]
    results = {}
    for label, sizes, big in (("small_mlp", [64, 64, 64, 10], False), ("mlp_1m", [784, 1024, 256, 10], True)):
        r = bench(sizes, args.rounds, args.iters, big, clock, device)
        results[label] = r
        print(f"{label}: {r['params']:,} parameters")
        for k in r["step_ms"]:
            extra = "" if k == "adam" else (
                f"  Adam/this step {r['speedup'][k]:.4f}, full step {r['full_step_ratio'][k]:.4f}"
            )
            print(f"  {k:12s} step {r['step_ms'][k]:9.2f} ms   full step {r['full_step_ms'][k]:9.2f} ms{extra}",
                  flush=True)
    line = {
        "name": "lopt",
        "baseline": "torch.optim.Adam.step on the same ~1M-parameter MLP, same run",
        "speedup": results["mlp_1m"]["speedup"][HEADLINE],
        "target": TARGET,
        "targets_1m": TARGETS,
        "targets_met": {k: results["mlp_1m"]["speedup"][k] >= t for k, t in TARGETS.items()},
        "headline": f"{HEADLINE}: group-context (spec-equivariant) rule, hidden 4, fused, optimizer.step() time ratio",
        "speedups": {m: {k: round(v, 4) for k, v in r["speedup"].items()} for m, r in results.items()},
        "full_step_ratios": {m: {k: round(v, 4) for k, v in r["full_step_ratio"].items()} for m, r in results.items()},
        "threads": args.threads,
        "clock": "cuda-synchronized wall" if device.type == "cuda" else args.clock,
        "device": str(device),
    }
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    import sys

    from tasks.jobs import run_module

    sys.exit(run_module(sys.modules[__name__]))
