"""Train and compare INR editors (equivariant metanetworks vs baselines) on an INR zoo.

    weightspace run inr-edit --edit dilate --out runs/inr-edit
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .data import EDITS
from .models import DEFAULT, EDITORS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--zoo", type=Path, default=None, help="zoo directory (default: OUT/zoo, built if missing)")
    p.add_argument("--dataset", default="digits", help="dataset of the zoo built when --zoo is missing")
    p.add_argument("--init", choices=("shared", "independent"), default="shared", help="recipe of a built zoo")
    p.add_argument("--edit", choices=sorted(EDITS), default="dilate")
    p.add_argument("--source", choices=("signal", "render"), default="signal",
                   help="edit the fitted signal (as the papers) or the INR's own render")
    p.add_argument("--models", nargs="+", default=None, choices=sorted(EDITORS),
                   help=f"editors (default: {' '.join(DEFAULT)})")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=None, help="override every editor's epoch count")
    p.add_argument("--limit", type=int, default=None, help="use only the first N INRs of each split")
    p.add_argument("--out", type=Path, default=Path("runs/inr-edit"))
    p.add_argument("--quiet", action="store_true")


def main(args: argparse.Namespace) -> int:
    from zoo import InrRecipe

    from tasks.inr_classify.data import ensure_zoo

    from .data import EditPairs
    from .run import Settings, compare

    root = ensure_zoo(args.zoo or args.out / "zoo", args.dataset, InrRecipe(init=args.init), progress=not args.quiet)
    pairs = EditPairs.load(root, args.edit, args.source, limit=args.limit)
    settings = Settings(seeds=tuple(args.seeds), epochs=args.epochs, progress=not args.quiet)
    compare(pairs, list(args.models or DEFAULT), settings, args.out)
    print(f"results written to {args.out / 'results.json'}, {args.out / 'examples.png'}, editors in {args.out / 'models'}")
    return 0
