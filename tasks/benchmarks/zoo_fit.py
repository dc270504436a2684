"""Benchmark: INRs fitted per second, batched (`zoo.inr_trainer.fit`) vs a per-network loop.

Both fit the same digits images with the same SIREN (2→32→32→1), init, Adam
settings and number of steps, single-threaded with denormals flushed. The baseline
is the loop a user would write: one `nn.Sequential` SIREN and one `torch.optim.Adam`
per image. Each mode runs in a fresh process so its peak RSS is its own.

    python -m tasks.benchmarks.zoo_fit [--networks 256] [--steps 100]

Last line: JSON with name, baseline, speedup (baseline time / batched time), target.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time

TARGET = 20.0


def _setup(n: int):
    from zoo import siren
    from zoo.datasets import digits
    from zoo.inr_zoo import InrRecipe, init_seeds

    data = digits()
    cfg = siren.SirenConfig()
    init = siren.init_stack(cfg, init_seeds(InrRecipe(init="independent"), range(n)))
    return cfg, init, data.coords(), data.targets()[:n]


def _batched(n: int, steps: int, chunk: int) -> dict:
    from zoo.inr_trainer import FitSettings, fit_in_chunks

    cfg, init, coords, targets = _setup(n)
    start = time.perf_counter()
    _, result = fit_in_chunks(cfg, init, coords, targets, FitSettings(steps=steps, lr=1e-3), chunk=chunk)
    return {"seconds": time.perf_counter() - start, "psnr_mean": float(result.psnr.mean())}


def _loop(n: int, steps: int, chunk: int) -> dict:
    import torch

    from zoo.inr_trainer import flushed_denormals, psnr_of

    cfg, init, coords, targets = _setup(n)
    psnrs = []
    start = time.perf_counter()
    with flushed_denormals():
        for i in range(n):
            model = cfg.module()
            model.load_state_dict({k: v[i] for k, v in init.items()})
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            for _ in range(steps):
                loss = ((model(coords) - targets[i]) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                psnrs.append(float(psnr_of(((model(coords) - targets[i]) ** 2).mean())))
    return {"seconds": time.perf_counter() - start, "psnr_mean": sum(psnrs) / n}


def _idle(n: int, steps: int, chunk: int) -> dict:
    _setup(n)
    return {"seconds": 0.0}


def _child(mode: str, n: int, steps: int, chunk: int, queue) -> None:
    out = {"_batched": _batched, "_loop": _loop, "_idle": _idle}[mode](n, steps, chunk)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(out)


def _run(mode: str, n: int, steps: int, chunk: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_child, args=(mode, n, steps, chunk, queue))
    p.start()
    out = queue.get()
    p.join()
    return out


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--networks", type=int, default=256)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--chunk", type=int, default=256)


def main(args: argparse.Namespace) -> dict:
    idle = _run("_idle", args.networks, args.steps, args.chunk)
    batched = _run("_batched", args.networks, args.steps, args.chunk)
    loop = _run("_loop", args.networks, args.steps, args.chunk)
    n = args.networks
    print(f"{n} digits INRs (SIREN 2-32-32-1), {args.steps} Adam steps each, 1 thread, denormals flushed")
    print(f"batched (chunks of {args.chunk}): {batched['seconds']:.2f} s, {n / batched['seconds']:.1f} INRs/s, mean PSNR {batched['psnr_mean']:.2f} dB, peak RSS {batched['peak_rss_mb']:.0f} MB")
    print(f"per-network nn.Module + torch.optim.Adam loop: {loop['seconds']:.2f} s, {n / loop['seconds']:.1f} INRs/s, mean PSNR {loop['psnr_mean']:.2f} dB, peak RSS {loop['peak_rss_mb']:.0f} MB")
    print(f"process with data loaded, no fitting: peak RSS {idle['peak_rss_mb']:.0f} MB")
    result = {
        "name": "zoo_inr_fit",
        "baseline": "per-network loop (nn.Sequential SIREN + torch.optim.Adam), same steps, data and init",
        "baseline_seconds": round(loop["seconds"], 3),
        "seconds": round(batched["seconds"], 3),
        "inrs_per_second": round(n / batched["seconds"], 2),
        "baseline_inrs_per_second": round(n / loop["seconds"], 2),
        "speedup": round(loop["seconds"] / batched["seconds"], 2),
        "target": TARGET,
        "peak_rss_mb": round(batched["peak_rss_mb"], 1),
        "baseline_peak_rss_mb": round(loop["peak_rss_mb"], 1),
        "idle_peak_rss_mb": round(idle["peak_rss_mb"], 1),
        "psnr_mean": round(batched["psnr_mean"], 2),
        "baseline_psnr_mean": round(loop["psnr_mean"], 2),
        "networks": n,
        "steps": args.steps,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    import sys

    from tasks.jobs import run_module

    sys.exit(run_module(sys.modules[__name__]))
