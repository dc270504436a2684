"""Training an editor: loss = MSE between the edited INR's render and the edited image.

The render is `zoo.siren.forward` on the zoo's grid, batched and differentiable, so
the gradient flows from pixels through the SIREN into the predicted weights and the
metanetwork. Model selection keeps the epoch with the lowest validation MSE.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from tasks.training import FitConfig, FitResult, WeightData

from .models import WeightEditor


@dataclass
class EditConfig(FitConfig):
    """`FitConfig` (AdamW, cosine decay, gradient clipping) for editors, 30 epochs by default.

    permute: draw a random element of the spec's group for each training INR (the
    target image does not change), the symmetry augmentation a non-equivariant
    editor needs; an equivariant editor gains nothing from it.
    """

    epochs: int = 30
    permute: bool = False


def render_loss(editor: WeightEditor, weights: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the edited INRs' renders against the targets (N, P)."""
    return F.mse_loss(editor.context.render(editor(weights)), target)


@torch.no_grad()
def edit_mse(editor: WeightEditor, data: WeightData, batch_size: int = 512) -> float:
    """Per-pixel MSE of the edited renders over a whole split, in eval mode."""
    editor.eval()
    total = 0.0
    for start in range(0, len(data), batch_size):
        w, target = data.take(torch.arange(start, min(start + batch_size, len(data))))
        total += float(render_loss(editor, w, target)) * len(target)
    return total / max(len(data), 1)


def _permuted(editor: WeightEditor, w: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
    spec = editor.context.spec
    g = spec.random_element(gen, batch_shape=(next(iter(w.values())).shape[0],))
    return spec.apply(w, g, batch_dims=1)


def fit_editor(
    editor: WeightEditor,
    train: WeightData,
    val: WeightData,
    cfg: EditConfig,
    *,
    test: WeightData | None = None,
    desc: str = "edit",
) -> FitResult:
    """Train `editor` on (weights, edited image) pairs; keep the best-validation state.

    An editor without parameters (the no-edit baseline) is only evaluated.
    """
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    editor = editor.to(device)
    train, val = train.to(device), val.to(device)
    params = [p for p in editor.parameters() if p.requires_grad]
    curves: dict[str, list[float]] = {"train_loss": [], "val": []}
    start = time.perf_counter()
    best = (edit_mse(editor, val), -1, copy.deepcopy(editor.state_dict()))
    if params and cfg.epochs > 0:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = max(1, math.ceil(len(train) / cfg.batch_size))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
        gen = torch.Generator().manual_seed(cfg.seed)
        aug_gen = torch.Generator().manual_seed(cfg.seed + 1_000_003)
        bar = tqdm(range(cfg.epochs), desc=desc, disable=not cfg.progress, leave=False)
        for epoch in bar:
            editor.train()
            order = torch.randperm(len(train), generator=gen)
            total = 0.0
            for s in range(steps_per_epoch):
                index = order[s * cfg.batch_size:(s + 1) * cfg.batch_size].to(device)
                w, target = train.take(index)
                if cfg.permute:
                    w = _permuted(editor, w, aug_gen)
                loss = render_loss(editor, w, target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(index)
            curves["train_loss"].append(total / len(train))
            value = edit_mse(editor, val)
            curves["val"].append(value)
            if value < best[0]:
                best = (value, epoch, copy.deepcopy(editor.state_dict()))
            bar.set_postfix(loss=f"{curves['train_loss'][-1]:.4f}", val=f"{value:.4f}")
        editor.load_state_dict(best[2])
    result = FitResult(best[2], best[1], best[0], curves, time.perf_counter() - start)
    if test is not None:
        result.test = edit_mse(editor, test.to(device))
    return result
