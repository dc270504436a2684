"""Meta-train a learned optimizer's rule on a task family (resumable).

    weightspace lopt meta-train --net groups --out runs/lopt/groups   (also: weightspace run lopt-meta-train ...)
"""
from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import torch

from weightspace.lopt.rule import BOUNDS, NET_KINDS, NOMINALS

from .families import FAMILIES
from .meta_train import METHODS, MetaConfig, meta_train

_CHOICES = {"net": NET_KINDS, "family": sorted(FAMILIES.families), "method": METHODS, "nominal": NOMINALS,
            "bound": BOUNDS}


def add_arguments(p: argparse.ArgumentParser) -> None:
    defaults = MetaConfig()
    for name, choices in _CHOICES.items():
        p.add_argument(f"--{name}", choices=choices, default=getattr(defaults, name),
                       help="learned term bounded relative to the nominal one (default) or not" if name == "bound" else None)
    for f in fields(MetaConfig):
        if f.name in _CHOICES or f.name == "second_order":
            continue
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)), default=getattr(defaults, f.name))
    p.add_argument("--second-order", action="store_true", help="backprop through task gradients too")
    p.add_argument("--out", type=Path, required=True, help="folder for checkpoints and rule.safetensors")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    values = {f.name: getattr(args, f.name) for f in fields(MetaConfig)}
    trainer = meta_train(MetaConfig(**values), args.out, resume=not args.fresh)
    last = trainer.history[-1] if trainer.history else {}
    print(f"{args.out / 'rule.safetensors'}: {trainer.rule!r}; {trainer.step} meta-steps, {trainer.cpu_used:.1f} CPU s; "
          f"last meta-loss {last.get('meta_loss', float('nan')):.4f}")
    return 0
