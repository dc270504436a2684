"""`python -m tasks.predict_generalization [options]`: the job without the console script."""
from __future__ import annotations

import sys

from tasks.jobs import run_module

from . import cli

if __name__ == "__main__":
    sys.exit(run_module(cli, prog="python -m tasks.predict_generalization"))
