"""Compare learned rules with tuned Adam / SGD-momentum on held-out task families.

    weightspace lopt eval --rule groups=runs/lopt/groups/rule.safetensors --out runs/lopt/eval
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from weightspace.errors import ConfigError

from .evaluate import EvalConfig, evaluate, markdown, save_results


def add_arguments(p: argparse.ArgumentParser) -> None:
    ed = EvalConfig()
    p.add_argument("--rule", action="append", default=[], metavar="NAME=PATH", help="a rule file (repeatable)")
    p.add_argument("--families", nargs="+", default=list(ed.families), help="names, or name@steps")
    p.add_argument("--steps", type=int, default=ed.steps)
    p.add_argument("--seeds", type=int, default=ed.seeds)
    p.add_argument("--tune-family", default=ed.tune_family)
    p.add_argument("--tune-steps", type=int, default=ed.tune_steps)
    p.add_argument("--tune-seeds", type=int, default=ed.tune_seeds)
    p.add_argument("--record", type=int, nargs="+", default=list(ed.record))
    p.add_argument("--out", type=Path, required=True, help="folder for results.json, results.md, curves.png")
    p.add_argument("--threads", type=int, default=1)


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    rules = {}
    for item in args.rule:
        name, sep, path = item.partition("=")
        if not sep:
            raise ConfigError(f"--rule {item!r}: expected NAME=PATH")
        rules[name] = path
    config = EvalConfig(rules, tuple(args.families), args.steps, args.seeds, args.tune_family, args.tune_steps,
                        args.tune_seeds, tuple(args.record))
    results = evaluate(config)
    paths = save_results(results, args.out)
    print(markdown(results))
    print(f"CPU seconds: {results['cpu_seconds']:.0f}; wrote {', '.join(str(p) for p in paths.values())}")
    return 0
