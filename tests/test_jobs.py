"""The job registry: every job and benchmark runs as `weightspace run JOB`, shows its
options with --help, and the top-level commands and `python -m` entries stay the same jobs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tasks.jobs import JOBS, job_module, listing, run_job
from weightspace.cli.main import main
from weightspace.errors import UnknownNameError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(JOBS))
def test_every_job_shows_its_help(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_job(name, ["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: weightspace run {name}")
    module = job_module(name)
    assert callable(module.add_arguments) and callable(module.main)
    assert "".join(module.__doc__.strip().splitlines()[0].split()) in "".join(out.split())  # argparse re-wraps


def test_every_benchmark_module_is_registered():
    modules = {p.stem for p in (ROOT / "tasks" / "benchmarks").glob("*.py") if p.stem != "__init__"}
    registered = {path.rsplit(".", 1)[1] for path in JOBS.values() if path.startswith("tasks.benchmarks.")}
    assert registered == modules


def test_no_benchmark_module_shadows_a_package_it_imports():
    """Run by path, a module's folder comes first on sys.path: a benchmark named after a
    package (nfn, zoo) would import itself instead."""
    names = {p.stem for p in (ROOT / "tasks" / "benchmarks").glob("*.py")}
    assert not names & {"nfn", "zoo", "tasks", "weightspace", "rebasin", "torch", "torch_geometric"}


def test_run_list_prints_every_job(capsys):
    assert main(["run", "--list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.strip().splitlines()] == list(JOBS)
    assert "bench-parse" in out and "inr-classify" in out
    assert listing() + "\n" == out


def test_unknown_job_is_a_named_error(capsys):
    with pytest.raises(UnknownNameError, match="unknown job 'nope'"):
        run_job("nope", [])
    with pytest.raises(SystemExit):
        main(["run", "nope"])
    assert "invalid choice" in capsys.readouterr().err
    assert main(["run"]) == 2


@pytest.mark.parametrize("argv, job", [
    (["predict", "--help"], "predict"),
    (["edit", "--help"], "edit"),
    (["lopt", "meta-train", "--help"], "lopt-meta-train"),
    (["lopt", "eval", "--help"], "lopt-eval"),
])
def test_top_level_commands_are_the_registered_jobs(argv, job, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    options = capsys.readouterr().out.split("options:", 1)[1]
    with pytest.raises(SystemExit):
        run_job(job, ["--help"])
    assert capsys.readouterr().out.split("options:", 1)[1] == options


def test_python_m_benchmark_still_runs():
    result = subprocess.run([sys.executable, "-m", "tasks.benchmarks.parse", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m tasks.benchmarks.parse")


def test_nfn_benchmark_fails_loudly_without_nfn():
    pytest.importorskip("torch")
    try:
        import nfn  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("nfn is installed")
    result = subprocess.run([sys.executable, str(ROOT / "tasks" / "benchmarks" / "nfn_layers.py"), "--batch", "4"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "MissingDependencyError" in lines[0] and "nfn" in lines[0]
    assert "speedup" not in result.stdout
