"""Entry point of the `weightspace` console script; subcommands live in their own modules.

Any `WeightspaceError` (bad input: a file, key, axis or option) ends the command with
one line on stderr and exit code 2; `weightspace --debug ...` (or the environment
variable WEIGHTSPACE_DEBUG=1) shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable

from ..errors import WeightspaceError

SUBCOMMANDS = {
    "inspect": "weightspace.cli.inspect",
    "align": "weightspace.cli.align",
    "merge": "weightspace.cli.merge",
    "transfer": "weightspace.cli.transfer",
    "generate": "weightspace.cli.generate",
}


PLUGIN_GROUP = "weightspace.commands"
DEBUG_ENV = "WEIGHTSPACE_DEBUG"


def _plugins() -> dict[str, str]:
    """Subcommands that live outside the library (zoo/, tasks/), found as entry points.

    The library never imports zoo or tasks; they register themselves under the
    `weightspace.commands` entry-point group in pyproject.toml.
    """
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=PLUGIN_GROUP)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="weightspace", description="Learning on neural-network weights.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in {**SUBCOMMANDS, **_plugins()}.items():
        importlib.import_module(module).add_parser(sub)
    return parser


def run_reporting_errors(command: str, run: Callable[[], int | None], debug: bool = False) -> int:
    """`run()`'s exit code; a WeightspaceError becomes one line on stderr and exit code 2
    (re-raised, with its traceback, under `debug` or WEIGHTSPACE_DEBUG=1)."""
    try:
        return int(run() or 0)
    except WeightspaceError as err:
        if debug or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        print(f"{command}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_reporting_errors(f"weightspace {args.command}", lambda: args.run(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
