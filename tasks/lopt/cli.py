"""`weightspace lopt meta-train|eval`: meta-train learned optimizers and compare them
(the jobs lopt-meta-train and lopt-eval of `weightspace run`).

    weightspace lopt meta-train --net groups --out runs/lopt/groups
    weightspace lopt eval --rule groups=runs/lopt/groups/rule.safetensors --out runs/lopt/eval

Also runnable without the console script: `python -m tasks.lopt.cli lopt ...`.
"""
from __future__ import annotations

import argparse
import sys

from tasks.jobs import add_job_parser
from weightspace.cli.main import run_reporting_errors

COMMANDS = {"meta-train": "lopt-meta-train", "eval": "lopt-eval"}


def add_parser(sub) -> None:
    """The `lopt` command (registered through the `weightspace.commands` entry point)."""
    p = sub.add_parser("lopt", help="learned optimizers: meta-train and evaluate")
    inner = p.add_subparsers(dest="lopt_command", required=True)
    for command, job in COMMANDS.items():
        add_job_parser(inner, command, job)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.lopt.cli")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run_reporting_errors("python -m tasks.lopt.cli", lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())
