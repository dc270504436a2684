"""`python -m tasks.predict_generalization [options]`: the job without the console script."""
from __future__ import annotations

import argparse
import sys

from .cli import add_job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.predict_generalization")
    add_job(parser.add_subparsers(dest="job", required=True))
    args = parser.parse_args(["predict-generalization", *(sys.argv[1:] if argv is None else argv)])
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
