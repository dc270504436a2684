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
graph rule >= 0.05. Fused rules step in place (`weightspace.lopt.inplace`); on CPU in float32
the mlp, deepset and groups rules run the native fused kernel (`weightspace.lopt.native`; the
JSON line says whether it built, and how long the first call took: compile or load), and the graph
rule's per-edge work runs fused (`weightspace.lopt.graph_native`; `graph_native` says whether it built).
On CUDA (`--device cuda`) times are wall seconds after a synchronize.

Memory bandwidth: the line also carries the GB/s of `c = a + b` on 64 MB float32 tensors
(same threads, same clock) and, per native rule on the ~1M model, the GB/s its step streams
(`native.bytes_per_element`) and Adam's at its minimal 28 bytes per parameter (read parameter,
gradient, two moments; write three). With `--threads` above 1 use `--clock wall`: CPU time
sums the threads.

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
from weightspace.lopt import LearnedOptimizer, LearnedRule, graph_native, native

TARGET = 0.33
ADAM_BYTES = 28  # per parameter: read p, g, exp_avg, exp_avg_sq; write p, exp_avg, exp_avg_sq (float32)
BANDWIDTH_ELEMENTS = 1 << 24  # 64 MB per float32 tensor: past the last-level cache
NATIVE_KINDS = ("mlp", "deepset", "groups")  # fused float32 CPU steps of these run the native kernel
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
          device: torch.device, built: bool) -> dict:
    """Step times; `built`: the native kernel serves the fused float32 CPU rules of `NATIVE_KINDS`."""
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
    streams = {
        k: native.bytes_per_element(opts[k][1].rule)
        for k in learned if built and CONFIGS[k][2] and CONFIGS[k][0] in NATIVE_KINDS
    }
    return {
        "params": params,
        "native_gbs": {k: b * params / med[k] / 1e9 for k, b in streams.items()},
        "adam_gbs": ADAM_BYTES * params / med["adam"] / 1e9,
        "step_ms": {k: 1e3 * v for k, v in med.items()},
        "full_step_ms": {k: 1e3 * v for k, v in med_full.items()},
        "speedup": {k: med["adam"] / med[k] for k in learned},
        "full_step_ratio": {k: med_full["adam"] / med_full[k] for k in learned},
    }


def bandwidth_gbs(clock: Callable[[], float], device: torch.device, reps: int = 5) -> float:
    """GB/s of `c = a + b` (two reads, one write) on float32 tensors past the last-level cache; best of `reps`."""
    a, b = torch.randn(BANDWIDTH_ELEMENTS, device=device), torch.randn(BANDWIDTH_ELEMENTS, device=device)
    c = torch.empty_like(a)
    best = float("inf")
    for _ in range(reps + 1):
        t0 = clock()
        torch.add(a, b, out=c)
        best = min(best, clock() - t0)
    return 3 * 4 * BANDWIDTH_ELEMENTS / best / 1e9


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
    t0 = time.perf_counter()
    built = device.type == "cpu" and native.library() is not None
    build_s = time.perf_counter() - t0
    results = {}
    for label, sizes, big in (("small_mlp", [64, 64, 64, 10], False), ("mlp_1m", [784, 1024, 256, 10], True)):
        r = bench(sizes, args.rounds, args.iters, big, clock, device, built)
        results[label] = r
        print(f"{label}: {r['params']:,} parameters")
        for k in r["step_ms"]:
            extra = "" if k == "adam" else (
                f"  Adam/this step {r['speedup'][k]:.4f}, full step {r['full_step_ratio'][k]:.4f}"
            )
            if k in r["native_gbs"]:
                extra += f"  native, {r['native_gbs'][k]:.1f} GB/s"
            print(f"  {k:12s} step {r['step_ms'][k]:9.2f} ms   full step {r['full_step_ms'][k]:9.2f} ms{extra}",
                  flush=True)
    bandwidth = bandwidth_gbs(clock, device)
    print(f"memory bandwidth (c = a + b, 64 MB tensors): {bandwidth:.1f} GB/s; native step built: {built} "
          f"(first call {build_s:.1f} s)")
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
        "bandwidth_gbs": round(bandwidth, 2),
        "native_gbs_1m": {k: round(v, 2) for k, v in results["mlp_1m"]["native_gbs"].items()},
        "adam_gbs_1m": round(results["mlp_1m"]["adam_gbs"], 2),
        "native": built,
        "native_first_call_s": round(build_s, 2),
        "graph_native": device.type == "cpu" and graph_native.library() is not None,
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
