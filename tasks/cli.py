"""`weightspace run JOB [options]`: every job and benchmark of `tasks.jobs.JOBS`
(registered through the `weightspace.commands` entry point; the library never imports tasks).

    weightspace run --list
    weightspace run inr-classify --out runs/inr
    weightspace run bench-parse --quick
"""
from __future__ import annotations

import argparse
import sys

from .jobs import JOBS, listing, run_job


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run a job or benchmark (weightspace run --list)",
                       description="Run a job or benchmark; `weightspace run JOB --help` shows its options.")
    p.add_argument("--list", action="store_true", help="list the jobs and exit")
    p.add_argument("job", nargs="?", choices=list(JOBS), metavar="JOB", help="a job name (see --list)")
    p.add_argument("job_args", nargs=argparse.REMAINDER, help="the job's options")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(listing())
        return 0
    if args.job is None:
        print(f"weightspace run: give a job, one of: {', '.join(JOBS)}", file=sys.stderr)
        return 2
    return run_job(args.job, args.job_args)
