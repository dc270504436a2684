"""`weightspace align A B --model MODULE:FACTORY`: align B to A, merge, report barriers.

The factory returns (model, example_inputs); the model is the template both
checkpoints fit. `--data MODULE:FACTORY` returns labelled batches ((inputs,
targets) pairs of one shape) for activation/STE matching, BatchNorm reset,
REPAIR and the loss path. The merged weights are saved with the spec and the
permutation applied to B in their metadata.
"""
from __future__ import annotations

import argparse
import importlib
import time
import warnings
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from ..errors import ConfigError

METHODS = ("weight", "activation", "ste")


def add_parser(sub) -> None:
    p = sub.add_parser("align", help="align model B to model A (Git Re-Basin), merge them and measure barriers")
    p.add_argument("a", help="checkpoint of model A (the reference)")
    p.add_argument("b", help="checkpoint of model B (permuted to match A)")
    p.add_argument("--model", required=True, help="MODULE:FACTORY returning (model, example_inputs)")
    p.add_argument("--data", help="MODULE:FACTORY returning (inputs, targets) batches of one shape")
    p.add_argument("--method", choices=METHODS, default="weight", help="matching method (default: weight)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of B in the merged model (default 0.5)")
    p.add_argument("--restarts", type=int, default=0, help="weight matching: random restarts")
    p.add_argument("--repair", action="store_true", help="apply REPAIR to the merged model (needs --data)")
    p.add_argument("--no-reset-bn", action="store_true", help="keep interpolated BatchNorm statistics")
    p.add_argument("--steps", type=int, default=11, help="points on the loss path (default 11)")
    p.add_argument("--out", type=Path, help="write the merged model here (.safetensors)")
    p.add_argument("--plot", type=Path, help="write the loss-path plot here (.png)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def _factory(target: str, what: str):
    module_name, _, attr = target.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr or "build")
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"--{what} {target}: cannot import ({err})") from err
    return fn()


def _element(args, model, spec, sd_a, sd_b, data, console):
    from .. import align

    gen = torch.Generator().manual_seed(args.seed)
    if args.method == "weight":
        m = align.weight_matching(spec, sd_a, sd_b, restarts=args.restarts, generator=gen)
        console.print(f"weight matching: objective {m.objective:.4g} after {m.sweeps} sweeps")
        return m.element
    if data is None:
        raise ConfigError(f"--method {args.method} needs --data")
    if args.method == "activation":
        return align.activation_matching(model, sd_a, sd_b, data)
    m = align.ste_matching(model, spec, sd_a, sd_b, data, generator=gen)
    console.print(f"STE matching: midpoint loss {m.losses[0]:.4g} -> {m.losses[-1]:.4g} over {len(m.losses)} steps")
    return m.element


def run(args: argparse.Namespace) -> int:
    from .. import align
    from ..align.barrier import loss_path
    from ..align.evaluate import Evaluator
    from ..align.pair import check_pair
    from ..align.weight_matching import alignment_objective
    from ..io import load, save
    from ..parser import parse

    console = Console()
    built = _factory(args.model, "model")
    if not (isinstance(built, tuple) and len(built) == 2):
        raise ConfigError(f"--model {args.model} must return (model, example_inputs), got {type(built).__name__}")
    model, inputs = built
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    data = list(_factory(args.data, "data")) if args.data else None
    sd_a, sd_b = load(args.a), load(args.b)
    start = time.perf_counter()
    with console.status("tracing the model"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        spec = parse(model, inputs)
    check_pair(sd_a, sd_b, spec)
    console.print(f"spec: {len(spec.groups)} groups over {len(spec.entries)} entries")
    with console.status(f"{args.method} matching"):
        g = _element(args, model, spec, sd_a, sd_b, data, console)
    aligned = spec.apply(sd_b, g)
    from ..align.identity import output_change

    change = output_change(model, sd_b, aligned, inputs)
    merged = align.interpolate(sd_a, aligned, args.alpha)
    from ..align.bn_reset import has_batchnorm

    reset = data if data is not None and not args.no_reset_bn and has_batchnorm(model) else None
    if args.repair:
        if data is None:
            raise ConfigError("--repair needs --data")
        merged = align.repair(model, spec, sd_a, aligned, args.alpha, data)
    elif reset is not None:
        merged = align.reset_batchnorm(model, merged, reset)
    table = Table(title=f"align {Path(args.a).name} ← {Path(args.b).name} ({args.method})")
    for col in ("quantity", "naive", "aligned"):
        table.add_column(col)
    table.add_row("objective <A, B>", f"{alignment_objective(spec, sd_a, sd_b):.4g}",
                  f"{alignment_objective(spec, sd_a, aligned):.4g}")
    table.add_row("aligned B vs B (max rel. output change)", "", f"{change:.2e}")
    moved = sum(int((p != torch.arange(len(p))).sum()) for p in g.perms.values())
    table.add_row("units moved", "", f"{moved} of {sum(len(p) for p in g.perms.values())}")
    paths = {}
    if data is not None and all(isinstance(b, (tuple, list)) and len(b) == 2 for b in data):
        alphas = [i / (args.steps - 1) for i in range(args.steps)]
        evaluate = Evaluator(model, data)
        transform = (lambda sd: align.reset_batchnorm(model, sd, reset)) if reset is not None else None
        with console.status("evaluating the linear paths"):
            for label, target in (("naive", sd_b), ("aligned", aligned)):
                paths[label] = loss_path(evaluate, sd_a, target, alphas, transform)
        table.add_row("loss barrier", f"{paths['naive'].barrier:.4g}", f"{paths['aligned'].barrier:.4g}")
        table.add_row("barrier (max − mean of ends)", f"{paths['naive'].barrier_mean:.4g}", f"{paths['aligned'].barrier_mean:.4g}")
        mid_n, mid_a = paths["naive"].at(args.alpha), paths["aligned"].at(args.alpha)
        if mid_a.accuracy is not None:
            table.add_row(f"accuracy at α={args.alpha:g}", f"{100 * mid_n.accuracy:.2f}%", f"{100 * mid_a.accuracy:.2f}%")
        final = evaluate(merged)
        table.add_row("merged model loss" + (" (REPAIR)" if args.repair else ""), "", f"{final.loss:.4g}")
    console.print(table)
    if args.plot and paths:
        align.plot_paths(paths, args.plot, title=f"{Path(args.a).stem} → {Path(args.b).stem}")
        console.print(f"plot written to {args.plot}")
    elif args.plot:
        console.print("no plot: --plot needs labelled --data")
    if args.out:
        from ..align.record import METADATA_KEY

        meta = {METADATA_KEY: g.to_json(), "weightspace.align.method": args.method,
                "weightspace.align.alpha": str(args.alpha)}
        save(merged, args.out, spec=spec, metadata=meta)
        console.print(f"merged model written to {args.out}")
    console.print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
