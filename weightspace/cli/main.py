"""Entry point of the `weightspace` console script; subcommands live in their own modules."""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import WeightspaceError

SUBCOMMANDS = {
    "inspect": "weightspace.cli.inspect",
    "align": "weightspace.cli.align",
}


PLUGIN_GROUP = "weightspace.commands"


def _plugins() -> dict[str, str]:
    """Subcommands that live outside the library (zoo/, tasks/), found as entry points.

    The library never imports zoo or tasks; they register themselves under the
    `weightspace.commands` entry-point group in pyproject.toml.
    """
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=PLUGIN_GROUP)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="weightspace", description="Learning on neural-network weights.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in {**SUBCOMMANDS, **_plugins()}.items():
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except WeightspaceError as err:
        print(f"weightspace {args.command}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
