"""Augmentation throughput on SIREN 2-32-32-1 INR batches, and aligned mixup batched
vs one weight-matching call per pair, in the same run.

    python -m tasks.benchmarks.augment [--batch 256] [--repeats 3]

The pipeline is the INR classification default: a random group element with sign
flips, SIREN bias shifts, a small random input-space affine map, Gaussian noise.
Baseline for `speedup`: aligned mixup that aligns each pair with
`weightspace.align.weight_matching` in a Python loop.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import weightspace as ws
from weightspace import augment as A
from weightspace import examples
from weightspace.align import weight_matching


def population(n: int, seed: int = 0) -> tuple[ws.WeightSpec, dict[str, torch.Tensor]]:
    """n SIREN 2-32-32-1 networks: one init, a random permutation and small noise each."""
    torch.manual_seed(seed)
    base = examples.siren((2, 32, 32, 1)).state_dict()
    spec = ws.infer_spec(base, activation="sin")
    gen = torch.Generator().manual_seed(seed)
    batch = {k: v + 0.02 * v.abs().mean() * torch.randn(n, *v.shape, generator=gen) for k, v in base.items()}
    return spec, spec.apply(batch, spec.random_element(gen, batch_shape=(n,)), batch_dims=1)


def per_pair_aligned_mixup(spec, batch, labels, num_classes, generator):
    """The baseline: the same mixup, aligning one pair at a time."""
    mix = A.Mixup(spec, num_classes=num_classes, mode="plain")
    index = torch.randperm(labels.numel(), generator=generator)
    partner = {k: v[index] for k, v in batch.items()}
    aligned = []
    for i in range(labels.numel()):
        a = {k: v[i] for k, v in batch.items()}
        b = {k: v[i] for k, v in partner.items()}
        aligned.append(spec.apply(b, weight_matching(spec, a, b, max_sweeps=mix.max_sweeps).element))
    partner = {k: torch.stack([p[k] for p in aligned]) for k in batch}
    lam = torch.rand(labels.numel(), generator=generator)
    return {k: lam.reshape(-1, *([1] * (v.dim() - 1))) * v + (1 - lam.reshape(-1, *([1] * (v.dim() - 1)))) * partner[k]
            for k, v in batch.items()}


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)


def main(args: argparse.Namespace) -> dict:
    spec, batch = population(args.batch)
    labels = torch.arange(args.batch) % 10
    gen = torch.Generator().manual_seed(0)
    pipeline = A.inr_recipe(spec)
    t_pipe = _best(lambda: pipeline(batch, gen), args.repeats)
    plain = A.Mixup(spec, num_classes=10, mode="plain")
    t_plain = _best(lambda: plain(batch, labels, gen), args.repeats)
    aligned = A.Mixup(spec, num_classes=10, mode="aligned")
    t_aligned = _best(lambda: aligned(batch, labels, gen), args.repeats)
    t_loop = _best(lambda: per_pair_aligned_mixup(spec, batch, labels, 10, gen), 1)
    rows = {
        "pipeline_samples_per_s": round(args.batch / t_pipe),
        "plain_mixup_samples_per_s": round(args.batch / t_plain),
        "aligned_mixup_batched_samples_per_s": round(args.batch / t_aligned),
        "aligned_mixup_per_pair_samples_per_s": round(args.batch / t_loop),
    }
    for k, v in rows.items():
        print(f"{k}: {v:,}")
    result = {
        "name": "augment",
        "baseline": "aligned mixup with one weight_matching call per pair (Python loop), same run",
        "speedup": round(t_loop / t_aligned, 2),
        "target": 3.0,
        "batch": args.batch,
        **rows,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    import sys

    from tasks.jobs import run_module

    sys.exit(run_module(sys.modules[__name__]))
