"""The transfer-digits job end to end on a tiny setting: every column present, values in range,
and the transferred point beats the new init before any training."""
from __future__ import annotations

import json

from tasks.jobs import run_job


def test_transfer_digits_tiny(tmp_path, capsys):
    argv = ["--seeds", "0", "--archs", "mlp", "--width", "8", "--epochs", "2", "--every", "10", "--cap", "30",
            "--target", "0.5", "--out", str(tmp_path)]
    assert run_job("transfer-digits", argv) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    mlp = result["mlp"]
    last = max(int(k.split("@")[1]) for k in mlp if k.startswith("gmt@"))
    assert last == 38  # 2 epochs of 19 steps: the final checkpoint is kept
    for method in ("naive", "fgmt", "gmt"):
        assert 0 <= mlp[f"{method}@{last}"]["mean"] <= 1
        assert 0 <= mlp[f"steps_to_target_from_{method}"]["mean"] <= 30
    assert mlp[f"gmt@{last}"]["mean"] > mlp["init"]["mean"]
    assert "steps_to_target_from_init" in capsys.readouterr().out
