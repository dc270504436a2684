"""`weightspace lopt meta-train|eval`: meta-train learned optimizers and compare them.

    weightspace lopt meta-train --net groups --out runs/lopt/groups
    weightspace lopt eval --rule groups=runs/lopt/groups/rule.safetensors --out runs/lopt/eval

Also runnable without the console script: `python -m tasks.lopt.cli lopt ...`.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

import torch

from weightspace.lopt import BOUNDS, NET_KINDS, NOMINALS

from .evaluate import EvalConfig, evaluate, markdown, save_results
from .families import FAMILIES
from .meta_train import METHODS, MetaConfig, meta_train


def add_parser(sub) -> None:
    p = sub.add_parser("lopt", help="learned optimizers: meta-train and evaluate")
    inner = p.add_subparsers(dest="lopt_command", required=True)

    m = inner.add_parser("meta-train", help="meta-train a learned rule on a task family (resumable)")
    defaults = MetaConfig()
    m.add_argument("--net", choices=NET_KINDS, default=defaults.net)
    m.add_argument("--family", choices=sorted(FAMILIES.families), default=defaults.family)
    m.add_argument("--method", choices=METHODS, default=defaults.method)
    m.add_argument("--nominal", choices=NOMINALS, default=defaults.nominal)
    m.add_argument("--bound", choices=BOUNDS, default=defaults.bound,
                   help="learned term bounded relative to the nominal one (default) or not")
    for f in fields(MetaConfig):
        if f.name in ("net", "family", "method", "nominal", "bound", "second_order"):
            continue
        m.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)), default=getattr(defaults, f.name))
    m.add_argument("--second-order", action="store_true", help="backprop through task gradients too")
    m.add_argument("--out", type=Path, required=True, help="folder for checkpoints and rule.safetensors")
    m.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")
    m.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    m.set_defaults(run=run_meta_train)

    e = inner.add_parser("eval", help="compare learned rules with tuned Adam / SGD-momentum on held-out families")
    ed = EvalConfig()
    e.add_argument("--rule", action="append", default=[], metavar="NAME=PATH", help="a rule file (repeatable)")
    e.add_argument("--families", nargs="+", default=list(ed.families), help="names, or name@steps")
    e.add_argument("--steps", type=int, default=ed.steps)
    e.add_argument("--seeds", type=int, default=ed.seeds)
    e.add_argument("--tune-family", default=ed.tune_family)
    e.add_argument("--tune-steps", type=int, default=ed.tune_steps)
    e.add_argument("--tune-seeds", type=int, default=ed.tune_seeds)
    e.add_argument("--record", type=int, nargs="+", default=list(ed.record))
    e.add_argument("--out", type=Path, required=True, help="folder for results.json, results.md, curves.png")
    e.add_argument("--threads", type=int, default=1)
    e.set_defaults(run=run_eval)


def run_meta_train(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    values = {f.name: getattr(args, f.name) for f in fields(MetaConfig)}
    trainer = meta_train(MetaConfig(**values), args.out, resume=not args.fresh)
    last = trainer.history[-1] if trainer.history else {}
    print(f"{args.out / 'rule.safetensors'}: {trainer.rule!r}; {trainer.step} meta-steps, {trainer.cpu_used:.1f} CPU s; "
          f"last meta-loss {last.get('meta_loss', float('nan')):.4f}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    rules = {}
    for item in args.rule:
        name, sep, path = item.partition("=")
        if not sep:
            print(f"--rule {item!r}: expected NAME=PATH", file=sys.stderr)
            return 2
        rules[name] = path
    config = EvalConfig(rules, tuple(args.families), args.steps, args.seeds, args.tune_family, args.tune_steps,
                        args.tune_seeds, tuple(args.record))
    results = evaluate(config)
    paths = save_results(results, args.out)
    print(markdown(results))
    print(f"CPU seconds: {results['cpu_seconds']:.0f}; wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.lopt.cli")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
