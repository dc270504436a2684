"""Predict classifiers' test accuracy from their weights (zoo built when missing).

    weightspace run predict-generalization --out runs/pg
    python -m tasks.predict_generalization --out runs/pg
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--zoo", type=Path, default=None, help="classifier zoo directory (default: OUT/zoo, built if missing)")
    p.add_argument("--dataset", default="digits", help="dataset of the zoo built when --zoo is missing")
    p.add_argument("--arch", choices=("cnn", "mlp"), default="cnn", help="architecture of a built zoo")
    p.add_argument("--count", type=int, default=512, help="networks in a built zoo")
    p.add_argument("--target", default="test_acc", help="manifest metric to predict")
    p.add_argument("--models", nargs="+", default=None, help="model names (default: the main comparison)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=None, help="override every model's epoch count")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads while training (0: torch's default); small metanetworks on few cores "
                        "ran 3-25x faster with 1 thread")
    p.add_argument("--out", type=Path, default=Path("runs/predict-generalization"))
    p.add_argument("--quiet", action="store_true")


def main(args: argparse.Namespace) -> int:
    from zoo import ClassifierRecipe

    from .data import GeneralizationData, ensure_zoo
    from .models import DEFAULT
    from .run import Settings, compare

    root = ensure_zoo(args.zoo or args.out / "zoo", args.dataset, ClassifierRecipe(arch=args.arch), args.count,
                      progress=not args.quiet)
    data = GeneralizationData.load(root, args.target)
    settings = Settings(seeds=tuple(args.seeds), epochs=args.epochs, threads=args.threads or None, progress=not args.quiet)
    compare(data, list(args.models or DEFAULT), settings, args.out)
    print(f"results written to {args.out / 'results.json'} and {args.out / 'scatter.png'}")
    return 0
