"""zoo diagnose: exact movement numbers, and the leak-vs-permutation pattern on a small zoo."""
from __future__ import annotations

import pytest
import torch

from zoo import Zoo
from zoo.diagnose import diagnose, movement
from zoo.features import statistics
from zoo.inr_zoo import InrRecipe, build_inr_zoo
from zoo.storage import INIT_PREFIX


def test_movement_is_relative_frobenius_change(small_zoo):
    zoo = Zoo(small_zoo)
    w, w0 = zoo.stacked(), zoo.stacked(INIT_PREFIX)
    got = movement(zoo)
    for k in zoo.keys:
        rel = torch.stack([(w[k][i] - w0[k][i]).norm() / w0[k][i].norm() for i in range(len(zoo))])
        assert got[k] == pytest.approx(float(rel.median()), rel=1e-5)


def test_statistics_are_invariant_to_the_spec_group(small_zoo):
    zoo = Zoo(small_zoo)
    w = zoo.stacked()
    g = zoo.spec.random_element(torch.Generator().manual_seed(0), batch_shape=(len(zoo),))
    torch.testing.assert_close(statistics(zoo.spec.apply(w, g, batch_dims=1), zoo.keys), statistics(w, zoo.keys))


def test_leak_control_is_read_by_flattened_weights_and_permutation_hides_it(tmp_path):
    kw = dict(steps=40, lr=1e-3)
    leak = build_inr_zoo(tmp_path / "leak", "digits", InrRecipe(permute=False, **kw), chunk=256, limit=300, progress=False)
    perm = build_inr_zoo(tmp_path / "perm", "digits", InrRecipe(**kw), chunk=256, limit=300, progress=False)
    assert leak and perm
    d_leak = diagnose(tmp_path / "leak", classifier="logreg", with_inputs=False)
    d_perm = diagnose(tmp_path / "perm", classifier="logreg", with_inputs=False)
    assert d_leak.scores["flattened weights"] > 0.6
    assert d_perm.scores["flattened weights"] < d_leak.scores["flattened weights"] - 0.3
    assert d_perm.scores["statistics"] == pytest.approx(d_leak.scores["statistics"], abs=1e-6)


def test_render_prints_manifest_text_as_text():
    """Names and notes from a zoo's files are printed, never read as rich markup or escapes."""
    import io

    from rich.console import Console

    from zoo.diagnose import Diagnosis, render

    d = Diagnosis("runs/[red]z", "shared[/bold]\x1b[2J", 3, {"w[/x]": 0.5}, {"stats": 0.25},
                  notes=["see [link=file:///etc]here[/link]"])
    buf = io.StringIO()
    render(d, Console(file=buf, width=200, color_system=None))
    out = buf.getvalue()
    assert "runs/[red]z" in out and "shared[/bold]" in out and "w[/x]" in out
    assert "[link=file:///etc]here[/link]" in out and "\x1b" not in out
