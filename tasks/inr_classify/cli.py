"""Compare weight-space classifiers on an INR zoo (built from a dataset when missing).

    weightspace run inr-classify --out runs/inr          # MNIST, independent inits (the main job)
    weightspace run inr-classify --dataset digits --init shared --out runs/control   # the control
    torchrun --nproc-per-node 2 -m weightspace.cli.main run inr-classify --out runs/ddp
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--zoo", type=Path, default=None, help="zoo directory (default: OUT/zoo, built if missing)")
    p.add_argument("--dataset", default="mnist",
                   help="dataset of the zoo built when --zoo is missing (default mnist: 5,000 real 28×28 digits; "
                        "'--dataset digits --init shared' is the shared-init + permutation control)")
    p.add_argument("--init", choices=("shared", "independent"), default="independent", help="recipe of a built zoo")
    p.add_argument("--steps", type=int, default=None,
                   help="Adam steps per INR of a built zoo (default: 150 on mnist, 300 on other datasets)")
    p.add_argument("--lr", type=float, default=None, help="INR fitting learning rate of a built zoo (default 1e-3)")
    p.add_argument("--views", type=int, default=1, help="INRs per image of a built zoo (NFN's protocol: 10)")
    p.add_argument("--first-init", choices=("siren", "torch", "hidden"), default=None,
                   help="first-layer init of a built zoo's SIRENs (default: hidden on mnist, siren elsewhere)")
    p.add_argument("--bias-init", choices=("torch", "zero"), default=None,
                   help="bias init of a built zoo's SIRENs (default: zero on mnist, torch elsewhere; "
                        "'--first-init siren --bias-init torch' is the SIREN paper's init)")
    p.add_argument("--target-psnr", type=float, default=None, help="stop fitting an INR at this PSNR (dB)")
    p.add_argument("--limit", type=int, default=None, help="build the zoo from the first N images only")
    p.add_argument("--models", nargs="+", default=None, help="model names (default: the main comparison)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--epochs", type=int, default=None, help="override every model's epoch count")
    p.add_argument("--augment", default=None,
                   help="override every weight model's augmentation: none, full (inr_recipe + aligned mixup) or "
                        "'+'-joined parts of symmetry, bias_shift, affine, noise, mixup")
    p.add_argument("--out", type=Path, default=Path("runs/inr-classify"))
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="parallel training processes (one torch thread each)")
    p.add_argument("--quiet", action="store_true")


def main(args: argparse.Namespace) -> int:
    """Under `torchrun --nproc-per-node K` the zoo's shards are built by all ranks,
    every run trains with DistributedDataParallel (gloo), and rank 0 writes."""
    from zoo.distributed import setup, teardown

    from .data import InrSplits, ensure_zoo, zoo_recipe
    from .models import DEFAULT
    from .run import Settings, compare

    ranks = setup()
    try:
        quiet = args.quiet or not ranks.is_main
        recipe = zoo_recipe(args.dataset, args.init, args.steps, args.lr, args.views, args.target_psnr)
        root = ensure_zoo(args.zoo or args.out / "zoo", args.dataset, recipe, progress=not quiet, ranks=ranks,
                          limit=args.limit, first_init=args.first_init, bias_init=args.bias_init)
        data = InrSplits.load(root)
        settings = Settings(seeds=tuple(args.seeds), epochs=args.epochs, progress=not quiet,
                            workers=args.workers if ranks.world == 1 else 1, augment=args.augment)
        compare(data, list(args.models or DEFAULT), settings, args.out, write=ranks.is_main)
    finally:
        teardown(ranks)
    if ranks.is_main:
        print(f"results written to {args.out / 'results.json'} and {args.out / 'curves.png'}")
    return 0
