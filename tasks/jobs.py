"""The job registry: every job and benchmark by name, for `weightspace run JOB`.

A job is a module with two functions:

    add_arguments(parser: argparse.ArgumentParser) -> None   # its options
    main(args: argparse.Namespace) -> int | dict | None      # runs it: an exit code, or a
                                                             # benchmark's result (exit 0)

The module's docstring's first line is its summary (`weightspace run --list`). The
same two functions serve `weightspace run JOB`, the top-level commands kept for the
common jobs (`weightspace predict`, `edit`, `lopt meta-train|eval`) and
`python -m tasks.benchmarks.NAME` (through `run_module`; also when run by path).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType
from typing import Sequence

from weightspace.cli.main import run_reporting_errors
from weightspace.errors import UnknownNameError

JOBS: dict[str, str] = {
    "inr-classify": "tasks.inr_classify.cli",
    "inr-edit": "tasks.inr_edit.train_cli",
    "edit": "tasks.inr_edit.cli",
    "predict": "tasks.predict_cli",
    "predict-generalization": "tasks.predict_generalization.cli",
    "lopt-meta-train": "tasks.lopt.meta_train_cli",
    "lopt-eval": "tasks.lopt.eval_cli",
    "bench-align": "tasks.benchmarks.align",
    "bench-augment": "tasks.benchmarks.augment",
    "bench-gmn": "tasks.benchmarks.gmn",
    "bench-graph": "tasks.benchmarks.graph",
    "bench-lopt": "tasks.benchmarks.lopt",
    "bench-nfn": "tasks.benchmarks.nfn_layers",
    "bench-parse": "tasks.benchmarks.parse",
    "bench-zoo": "tasks.benchmarks.zoo_fit",
    "generate-checkpoints": "tasks.generate_checkpoints.cli",
    "merge-digits": "tasks.merge_digits.cli",
    "transfer-digits": "tasks.transfer_digits.cli",
}


def job_module(name: str) -> ModuleType:
    """The module of job `name`; UnknownNameError listing the jobs if there is none."""
    if name not in JOBS:
        raise UnknownNameError(f"unknown job {name!r}; the jobs are {', '.join(JOBS)}")
    return importlib.import_module(JOBS[name])


def summary(module: ModuleType) -> str:
    """The first line of a job module's docstring."""
    return module.__doc__.strip().splitlines()[0] if module.__doc__ else ""


def exit_code(result: int | dict | None) -> int:
    """A job's return value as an exit code (a benchmark's result dict means success)."""
    return result if isinstance(result, int) else 0


def add_job_parser(sub, command: str, job: str) -> argparse.ArgumentParser:
    """Add `command` to the subparsers `sub`, running job `job` with the job's own options."""
    module = job_module(job)
    p = sub.add_parser(command, help=summary(module), description=summary(module))
    module.add_arguments(p)
    p.set_defaults(run=lambda args: exit_code(module.main(args)))
    return p


def _parse_and_run(module: ModuleType, argv: Sequence[str] | None, prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=summary(module))
    module.add_arguments(parser)
    return exit_code(module.main(parser.parse_args(argv)))


def run_job(name: str, argv: Sequence[str]) -> int:
    """`weightspace run NAME ARGV...` (the console script reports errors)."""
    return _parse_and_run(job_module(name), argv, f"weightspace run {name}")


def run_module(module: ModuleType, prog: str | None = None) -> int:
    """`python -m MODULE [options]` for a job module: parse the command line and run it.

    A WeightspaceError ends it with one line and exit code 2, as in the console script
    (WEIGHTSPACE_DEBUG=1 shows the traceback).
    """
    if prog is None:
        prog = f"python -m {module.__spec__.name}" if module.__spec__ else f"python {sys.argv[0]}"
    return run_reporting_errors(prog, lambda: _parse_and_run(module, None, prog))


def listing() -> str:
    """One line per job: its name and summary."""
    width = max(map(len, JOBS))
    return "\n".join(f"{name:<{width}}  {summary(job_module(name))}" for name in JOBS)
