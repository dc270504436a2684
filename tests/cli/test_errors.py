"""Every `weightspace` subcommand turns a WeightspaceError into one line on stderr and exit
code 2; `--debug` shows the traceback instead."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from weightspace.cli.main import main
from weightspace.errors import CheckpointError, ConfigError


def _bad_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{trunc")
    return bad


@pytest.mark.parametrize("argv", [
    lambda bad, tmp: ["inspect", str(bad)],
    lambda bad, tmp: ["predict", "--metanet", str(bad), str(bad)],
    lambda bad, tmp: ["run", "predict", "--metanet", str(bad), str(bad)],
    lambda bad, tmp: ["edit", "--metanet", str(bad), str(bad), "--out", str(tmp / "out.safetensors")],
    lambda bad, tmp: ["lopt", "eval", "--rule", f"r={bad}", "--out", str(tmp / "eval")],
    lambda bad, tmp: ["zoo", "info", str(tmp)],
], ids=["inspect", "predict", "run-predict", "edit", "lopt-eval", "zoo-info"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv):
    bad = _bad_file(tmp_path)
    assert main(argv(bad, tmp_path)) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("weightspace ") and "Error: " in lines[0]
    assert "Traceback" not in captured.err


def test_the_line_names_the_file(tmp_path, capsys):
    bad = _bad_file(tmp_path)
    assert main(["predict", "--metanet", str(bad), str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"weightspace predict: CheckpointError: {bad}")


def test_debug_raises_the_error_itself(tmp_path):
    bad = _bad_file(tmp_path)
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        main(["--debug", "inspect", str(bad)])
    with pytest.raises(ConfigError, match="NAME=PATH"):
        main(["--debug", "run", "lopt-eval", "--rule", "no-equals-sign", "--out", str(tmp_path)])


def test_console_script_prints_a_traceback_only_with_debug(tmp_path):
    bad = _bad_file(tmp_path)
    env = {**os.environ, "WEIGHTSPACE_DEBUG": ""}
    cmd = [sys.executable, "-m", "weightspace.cli.main"]
    plain = subprocess.run([*cmd, "inspect", str(bad)], capture_output=True, text=True, timeout=120, env=env)
    assert plain.returncode == 2 and len(plain.stderr.strip().splitlines()) == 1, plain.stderr
    debug = subprocess.run([*cmd, "--debug", "inspect", str(bad)], capture_output=True, text=True, timeout=120,
                           env=env)
    assert debug.returncode == 1
    assert debug.stderr.startswith("Traceback") and "CheckpointError" in debug.stderr.strip().splitlines()[-1]
