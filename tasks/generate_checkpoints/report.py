"""The job's printed table and its plots (achieved vs prompted loss and nearest-checkpoint distance; diffusion loss)."""
from __future__ import annotations

import math
from pathlib import Path

from rich.table import Table

from weightspace.io.save import write_atomic


def rows(results: dict) -> list[tuple[str, dict]]:
    """(name, record) of every method in the table: the generators, the baselines, the held-out real checkpoints."""
    ev = results["evaluation"]
    out = [(name, rec) for name, rec in ev["generators"].items()]
    out += [(f"baseline: {name}", rec) for name, rec in ev["baselines"].items()]
    out.append(("held-out real (similar loss)", ev["heldout_real"]))
    return out


def _num(value, fmt: str = ".3f") -> str:
    return "—" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def _steps(record: dict) -> str:
    """Median steps and the fraction of targets reached within the cap, e.g. "15 (93%)"."""
    if not record:
        return "—"
    return f"{_num(record['median'], '.0f')} ({100 * record['reached']:.0f}%)"


def table(results: dict) -> Table:
    ev = results["evaluation"]
    budget = results["config"]["budget"]
    t = Table(title=f"Generated checkpoints from {ev['heldout_inits']} held-out inits — prompted {results['config']['metric']} "
                    f"(budget: {budget['steps']} steps × batch {budget['batch']}, lr {budget['lr']})")
    prompts = ev["prompts"]
    for col in ("method", *(f"loss @ {p:.2f}" for p in prompts), "error", "Pearson", "MAE", "NN dist aligned",
                "NN dist raw", "Adam steps (reached)", "zoo recipe steps"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for name, rec in rows(results):
        pr, m = rec["prompting"], rec["memorization"]
        adam, zoo = rec.get("adam"), rec.get("zoo_recipe")
        t.add_row(name, *(_num(q["loss_mean"]) for q in pr["per_prompt"]), _num(pr["error_mean"]), _num(pr["pearson"]),
                  _num(pr["mae"]), _num(m["aligned_mean"], ".2f"), _num(m["unaligned_mean"], ".2f"),
                  _steps(adam), _steps(zoo))
    return t


def _save(fig, path: Path) -> Path:
    """Write `fig` to `path` as a PNG (atomically) and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return path


def plot(results: dict, path: Path) -> Path:
    """Two panels over the prompts: achieved loss (mean ± std, with the diagonal) and aligned nearest-training distance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prompts = results["evaluation"]["prompts"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    for name, rec in rows(results):
        per = rec["prompting"]["per_prompt"]
        ax.errorbar(prompts, [q["loss_mean"] for q in per], yerr=[q["loss_std"] for q in per], marker="o", ms=3,
                    capsize=2, label=name)
        bx.plot(prompts, rec["memorization"]["aligned_per_prompt"], marker="o", ms=3, label=name)
    lo, hi = min(prompts), max(prompts)
    ax.plot([lo, hi], [lo, hi], color="gray", ls="--", lw=1)
    ax.set(xlabel="prompted test loss", ylabel="achieved test loss", title="achieved vs prompted")
    bx.set(xlabel="prompted test loss", ylabel="distance to nearest training checkpoint (aligned)",
           title="memorization check")
    for a in (ax, bx):
        a.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_training(results: dict, path: Path) -> Path:
    """The diffusion loss of each denoiser over its training steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, rec in results["training"]["denoisers"].items():
        ax.plot(rec["diffusion_loss"]["history"], lw=0.8, label=f"{name} ({rec['params']:,} params)")
    ax.set(xlabel="step", ylabel="diffusion loss", yscale="log", title="denoiser training (equal budget)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
