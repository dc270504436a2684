"""`weightspace run TASK`: the end-to-end jobs (registered through the
`weightspace.commands` entry point; the library never imports tasks)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run an end-to-end job (inr-classify, ...)")
    jobs = p.add_subparsers(dest="job", required=True)
    inr = jobs.add_parser("inr-classify", help="compare weight-space classifiers on an INR zoo")
    inr.add_argument("--zoo", type=Path, default=None, help="zoo directory (default: OUT/zoo, built if missing)")
    inr.add_argument("--dataset", default="digits", help="dataset of the zoo built when --zoo is missing")
    inr.add_argument("--init", choices=("shared", "independent"), default="shared", help="recipe of a built zoo")
    inr.add_argument("--models", nargs="+", default=None, help="model names (default: the main comparison)")
    inr.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    inr.add_argument("--epochs", type=int, default=None, help="override every model's epoch count")
    inr.add_argument("--augment", default=None,
                     help="override every weight model's augmentation: none, full (inr_recipe + aligned mixup) or "
                          "'+'-joined parts of symmetry, bias_shift, affine, noise, mixup")
    inr.add_argument("--out", type=Path, default=Path("runs/inr-classify"))
    inr.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                     help="parallel training processes (one torch thread each)")
    inr.add_argument("--quiet", action="store_true")
    inr.set_defaults(run=run_inr_classify)

    from .inr_edit.cli import add_job as add_inr_edit

    add_inr_edit(jobs)

    from .predict_generalization.cli import add_job as add_predict_generalization

    add_predict_generalization(jobs)


def run_inr_classify(args: argparse.Namespace) -> int:
    """Under `torchrun --nproc-per-node K` the zoo's shards are built by all ranks,
    every run trains with DistributedDataParallel (gloo), and rank 0 writes."""
    from zoo import InrRecipe
    from zoo.distributed import setup, teardown

    from .inr_classify.data import InrSplits, ensure_zoo
    from .inr_classify.models import DEFAULT
    from .inr_classify.run import Settings, compare

    ranks = setup()
    try:
        quiet = args.quiet or not ranks.is_main
        root = ensure_zoo(args.zoo or args.out / "zoo", args.dataset, InrRecipe(init=args.init), progress=not quiet,
                          ranks=ranks)
        data = InrSplits.load(root)
        settings = Settings(seeds=tuple(args.seeds), epochs=args.epochs, progress=not quiet,
                            workers=args.workers if ranks.world == 1 else 1, augment=args.augment)
        compare(data, list(args.models or DEFAULT), settings, args.out, write=ranks.is_main)
    finally:
        teardown(ranks)
    if ranks.is_main:
        print(f"results written to {args.out / 'results.json'} and {args.out / 'curves.png'}")
    return 0
