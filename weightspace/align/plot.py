"""Plot loss (and accuracy) along linear paths, naive against aligned."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from .barrier import LossPath


def plot_paths(paths: Mapping[str, LossPath], path: str | Path, title: str = "linear interpolation") -> Path:
    """Write a loss-vs-α figure (accuracy beside it when known) for each labelled path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_acc = any(a is not None for p in paths.values() for a in p.accuracies)
    fig, axes = plt.subplots(1, 2 if with_acc else 1, figsize=(9 if with_acc else 5, 3.5), squeeze=False)
    for label, p in paths.items():
        axes[0][0].plot(p.alphas, p.losses, marker="o", label=f"{label} (barrier {p.barrier:.3f})")
        if with_acc and all(a is not None for a in p.accuracies):
            axes[0][1].plot(p.alphas, [100 * a for a in p.accuracies], marker="o", label=label)
    axes[0][0].set(xlabel="α (0 = A, 1 = B)", ylabel="loss", title=title)
    axes[0][0].legend()
    if with_acc:
        axes[0][1].set(xlabel="α", ylabel="accuracy (%)")
        axes[0][1].legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
