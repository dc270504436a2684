"""`weightspace transfer CKPT0 CKPT1 ... --init NEW --model MODULE:FACTORY --data MODULE:FACTORY --out DIR`.

Transfers a training trajectory (checkpoints of one run, its init first) to a new
init by gradient matching along the trajectory (GMT, or its fast variant FGMT;
`naive` adds the un-permuted updates, the control). The factory returns (model,
example_inputs), the template every checkpoint fits; `--data` returns (inputs,
targets) batches, on which the gradients are taken and the transferred points
scored. DIR receives `transferred-0000.safetensors`, … (one per source checkpoint,
the spec and the permutation in their metadata); no output may be an input.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import ConfigError
from .factory import import_target, model_and_inputs, parser_warnings

METADATA_METHOD = "weightspace.transfer.method"


def add_parser(sub) -> None:
    from ..align.transfer import METHODS

    p = sub.add_parser("transfer", help="transfer a training trajectory to a new init (GMT / FGMT)")
    p.add_argument("source", nargs="+", help="checkpoints of the source run, in order, its init first")
    p.add_argument("--init", required=True, help="the new init to transfer the trajectory to")
    p.add_argument("--model", required=True, help="MODULE:FACTORY returning (model, example_inputs)")
    p.add_argument("--data", help="MODULE:FACTORY returning (inputs, targets) batches (gradients and scores)")
    p.add_argument("--method", choices=METHODS, default="gmt", help="gmt (default), fgmt (fast) or naive")
    p.add_argument("--loss", default="auto", help="cross-entropy, mse, MODULE:CALLABLE or auto (as `weightspace align`)")
    p.add_argument("--out", required=True, type=Path, help="folder for the transferred checkpoints")
    p.add_argument("--seed", type=int, default=0, help="weight matching's randomness")
    p.set_defaults(run=run)


def _outputs(args: argparse.Namespace) -> list[Path]:
    """One output file per source checkpoint, none of them an input."""
    from ..io.paths import check_output

    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out} exists and is not a folder")
    inputs = [*args.source, args.init]
    return [check_output(args.out / f"transferred-{s:04d}.safetensors", inputs) for s in range(len(args.source))]


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    from ..align.evaluate import Evaluator
    from ..align.record import METADATA_KEY
    from ..align.transfer import loss_gradient, transfer_trajectory
    from ..io import load, save
    from ..parser import parse
    from .align import loss_function

    console = Console()
    start = time.perf_counter()
    if args.method != "naive" and not args.data:
        raise ConfigError(f"--method {args.method} needs --data: the gradients are taken on labelled batches")
    outputs = _outputs(args)
    model, inputs = model_and_inputs(args.model, "--model")
    data = list(import_target(args.data, "--data")()) if args.data else None
    if data is not None and not all(isinstance(b, (tuple, list)) and len(b) == 2 for b in data):
        raise ConfigError("--data must return (inputs, targets) batches")
    source = [load(p) for p in args.source]
    init = load(args.init)
    with console.status("tracing the model"), parser_warnings(console):
        spec = parse(model, inputs)
    loss = loss_function(args.loss, data) if data is not None else None
    gradient = loss_gradient(model, data, loss) if data is not None else None
    with console.status(f"{args.method} transfer over {len(source)} checkpoints"):
        result = transfer_trajectory(spec, source, init, gradient, method=args.method,
                                     generator=torch.Generator().manual_seed(args.seed))
    args.out.mkdir(parents=True, exist_ok=True)
    for path, sd, g in zip(outputs, result.trajectory, result.elements):
        save(sd, path, spec=spec, metadata={METADATA_KEY: g.to_json(), METADATA_METHOD: args.method})
    if data is not None:
        evaluate = Evaluator(model, data, loss)
        table = Table(title=f"{args.method} transfer to {Path(args.init).name}")
        for col in ("checkpoint", "source loss", "transferred loss", "transferred accuracy"):
            table.add_column(col)
        for s, (sd_src, sd_new) in enumerate(zip(source, result.trajectory)):
            a, b = evaluate(sd_src), evaluate(sd_new)
            acc = f"{100 * b.accuracy:.2f}%" if b.accuracy is not None else "-"
            table.add_row(str(s), f"{a.loss:.4g}", f"{b.loss:.4g}", acc)
        console.print(table)
    console.print(f"{len(outputs)} transferred checkpoints written to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0
