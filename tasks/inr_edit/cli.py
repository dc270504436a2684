"""Edit an INR checkpoint with a trained editor metanetwork (saved by the inr-edit job).

    weightspace edit --metanet editor.safetensors in.safetensors --out out.safetensors --png before_after.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import weightspace as ws
from weightspace.errors import EditError

from .data import apply_edit


def add_parser(sub) -> None:
    """The `edit` command (registered through the `weightspace.commands` entry point)."""
    from tasks.jobs import add_job_parser

    add_job_parser(sub, "edit", "edit")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, help="INR checkpoint (one state dict, or stacked INRs with a leading dim)")
    p.add_argument("--metanet", type=Path, required=True, help="editor saved by `weightspace run inr-edit`")
    p.add_argument("--out", type=Path, required=True, help="where to write the edited checkpoint (.safetensors)")
    p.add_argument("--png", type=Path, default=None, help="before/after picture")


def edit_checkpoint(metanet: Path, source: Path, out: Path, png: Path | None = None) -> dict[str, float]:
    """Edit the INR(s) in `source` with the editor in `metanet`; write `out` (and `png`).

    Returns the MSE of the edited render against the pixel edit of the input's render
    (what the editor was trained to approximate) and the same for the unedited input.
    """
    from weightspace.io.load import checkpoint_files
    from weightspace.io.paths import check_output

    from tasks.metanet_io import load_metanet

    from .models import editor_from_config

    check_output(out, [source, *checkpoint_files(source), metanet], "--out file")
    editor, _ = load_metanet(metanet, {"inr-edit": editor_from_config})
    spec, context = editor.context.spec, editor.context
    state = ws.load(source)
    if not out.name.endswith(".safetensors"):
        raise EditError(f"{out}: the edited checkpoint is written as safetensors; name it '*.safetensors'")
    batched = _is_batched(spec, state, source)
    weights = {k: state[k].float() if batched else state[k].float().unsqueeze(0) for k in spec.entries}
    with torch.no_grad():
        edited = editor(weights)
        before, after = context.render(weights), context.render(edited)
    wanted = apply_edit(context.edit, before.reshape(-1, *context.grid)).reshape(before.shape)
    if batched:
        ws.save({k: v.contiguous() for k, v in edited.items()}, out, metadata={"weightspace.edit": context.edit})
    else:
        ws.save({k: v[0].contiguous() for k, v in edited.items()}, out, spec=spec,
                metadata={"weightspace.edit": context.edit})
    if png is not None:
        from .plots import save_rows

        save_rows(png, {"before": before, f"{context.edit} of before": wanted, "after": after}, context.grid, rows=8)
    return {"mse_edited": float(((after - wanted) ** 2).mean()), "mse_unedited": float(((before - wanted) ** 2).mean())}


def _is_batched(spec: ws.WeightSpec, state: dict[str, torch.Tensor], source: Path) -> bool:
    """True for stacked INRs (a leading dim), False for one; a named error otherwise."""
    try:
        spec.check(state, where=str(source))
        return False
    except ws.WeightspaceError:
        spec.check(state, batch_dims=1, where=str(source))
        return True


def main(args: argparse.Namespace) -> int:
    scores = edit_checkpoint(args.metanet, args.input, args.out, args.png)
    print(f"edited checkpoint written to {args.out}" + (f", picture to {args.png}" if args.png else ""))
    print(f"render MSE against the pixel edit of the input: {scores['mse_edited']:.4f} "
          f"(unedited input: {scores['mse_unedited']:.4f})")
    return 0
