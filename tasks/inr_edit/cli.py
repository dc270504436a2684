"""`weightspace edit` (apply a trained editor to an INR checkpoint) and the
`weightspace run inr-edit` job (train and compare editors on a zoo).

    weightspace edit --metanet editor.safetensors in.safetensors --out out.safetensors --png before_after.png
    weightspace run inr-edit --edit dilate --out runs/inr-edit
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import weightspace as ws

from .data import EDITS, EditError, apply_edit
from .models import DEFAULT, EDITORS


def add_parser(sub) -> None:
    """The `edit` subcommand (registered through the `weightspace.commands` entry point)."""
    p = sub.add_parser("edit", help="edit an INR checkpoint with a trained editor metanetwork")
    p.add_argument("input", type=Path, help="INR checkpoint (one state dict, or stacked INRs with a leading dim)")
    p.add_argument("--metanet", type=Path, required=True, help="editor saved by `weightspace run inr-edit`")
    p.add_argument("--out", type=Path, required=True, help="where to write the edited checkpoint (.safetensors)")
    p.add_argument("--png", type=Path, default=None, help="before/after picture")
    p.set_defaults(run=run_edit)


def add_job(jobs) -> None:
    """The `inr-edit` job of `weightspace run`."""
    p = jobs.add_parser("inr-edit", help="train and compare INR editors (equivariant vs baselines) on an INR zoo")
    p.add_argument("--zoo", type=Path, default=None, help="zoo directory (default: OUT/zoo, built if missing)")
    p.add_argument("--dataset", default="digits", help="dataset of the zoo built when --zoo is missing")
    p.add_argument("--init", choices=("shared", "independent"), default="shared", help="recipe of a built zoo")
    p.add_argument("--edit", choices=sorted(EDITS), default="dilate")
    p.add_argument("--source", choices=("signal", "render"), default="signal",
                   help="edit the fitted signal (as the papers) or the INR's own render")
    p.add_argument("--models", nargs="+", default=None, choices=sorted(EDITORS),
                   help=f"editors (default: {' '.join(DEFAULT)})")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=None, help="override every editor's epoch count")
    p.add_argument("--limit", type=int, default=None, help="use only the first N INRs of each split")
    p.add_argument("--out", type=Path, default=Path("runs/inr-edit"))
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=run_inr_edit)


def run_inr_edit(args: argparse.Namespace) -> int:
    from zoo import InrRecipe

    from tasks.inr_classify.data import ensure_zoo

    from .data import EditPairs
    from .run import Settings, compare

    root = ensure_zoo(args.zoo or args.out / "zoo", args.dataset, InrRecipe(init=args.init), progress=not args.quiet)
    pairs = EditPairs.load(root, args.edit, args.source, limit=args.limit)
    settings = Settings(seeds=tuple(args.seeds), epochs=args.epochs, progress=not args.quiet)
    compare(pairs, list(args.models or DEFAULT), settings, args.out)
    print(f"results written to {args.out / 'results.json'}, {args.out / 'examples.png'}, editors in {args.out / 'models'}")
    return 0


def edit_checkpoint(metanet: Path, source: Path, out: Path, png: Path | None = None) -> dict[str, float]:
    """Edit the INR(s) in `source` with the editor in `metanet`; write `out` (and `png`).

    Returns the MSE of the edited render against the pixel edit of the input's render
    (what the editor was trained to approximate) and the same for the unedited input.
    """
    from weightspace.io.load import checkpoint_files
    from weightspace.io.paths import check_output

    from tasks.metanet_io import config_path, load_metanet

    from .models import editor_from_config

    check_output(out, [source, *checkpoint_files(source), metanet, config_path(metanet)], "--out file")
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


def run_edit(args: argparse.Namespace) -> int:
    scores = edit_checkpoint(args.metanet, args.input, args.out, args.png)
    print(f"edited checkpoint written to {args.out}" + (f", picture to {args.png}" if args.png else ""))
    print(f"render MSE against the pixel edit of the input: {scores['mse_edited']:.4f} "
          f"(unedited input: {scores['mse_unedited']:.4f})")
    return 0
