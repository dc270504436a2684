"""Pictures of edits: rows of INRs, columns of renders (before, target, after, …)."""
from __future__ import annotations

from pathlib import Path

import torch

from weightspace.io.save import write_atomic


def save_rows(path: Path, columns: dict[str, torch.Tensor], grid: tuple[int, ...], rows: int = 6) -> Path:
    """A PNG of `rows` samples; each column a titled (N, P) tensor of renders on `grid`.

    2-D grids are drawn as grey images on one shared [-1, 1] scale, 1-D grids as curves.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(rows, min(len(v) for v in columns.values()))
    fig, axes = plt.subplots(n, len(columns), figsize=(1.8 * len(columns), 1.8 * n), squeeze=False)
    for j, (title, values) in enumerate(columns.items()):
        for i in range(n):
            ax = axes[i][j]
            v = values[i].detach().float().cpu()
            if len(grid) == 2:
                ax.imshow(v.reshape(grid).numpy(), cmap="gray", vmin=-1, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.plot(v.numpy())
                ax.set_ylim(-1.2, 1.2)
            if i == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path
