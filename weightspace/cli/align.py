"""`weightspace align A B --model MODULE:FACTORY`: align B to A, merge, report barriers.

The factory returns (model, example_inputs); the model is the template both
checkpoints fit. `--data MODULE:FACTORY` returns labelled batches ((inputs,
targets) pairs of one shape) for activation/STE matching, BatchNorm reset,
REPAIR and the loss path; `--loss` says how outputs are scored (a model with
tuple or dict outputs is scored on its first output tensor). BatchNorm
statistics are recomputed only with `--reset-bn`, or when the checkpoints lack
them. The merged weights are saved with the spec and the permutation applied to
B in their metadata.
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from ..errors import ConfigError
from .factory import import_target, model_and_inputs, parser_warnings

METHODS = ("weight", "activation", "ste")
LOSSES = ("auto", "cross-entropy", "mse")
_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


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
    p.add_argument("--reset-bn", action="store_true",
                   help="recompute BatchNorm statistics of merged models on --data (default: keep the "
                        "interpolated ones, unless the checkpoints lack them)")
    p.add_argument("--loss", default="auto",
                   help="scores on --data: cross-entropy, mse (on the outputs), MODULE:CALLABLE "
                        "(outputs, targets) -> mean loss, or auto (default: cross-entropy for integer "
                        "targets, mse otherwise)")
    p.add_argument("--steps", type=int, default=11, help="points on the loss path (default 11)")
    p.add_argument("--out", type=Path, help="write the merged model here (.safetensors)")
    p.add_argument("--plot", type=Path, help="write the loss-path plot here (.png)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def loss_function(spec: str, data: list):
    """The loss function `--loss` names (auto: by the targets' dtype)."""
    if ":" in spec:
        return import_target(spec, "--loss")
    if spec not in LOSSES:
        raise ConfigError(f"--loss {spec!r}: expected one of {', '.join(LOSSES)} or MODULE:CALLABLE")
    if spec == "auto":
        floating = all(torch.is_tensor(b[1]) and b[1].is_floating_point() for b in data)
        spec = "mse" if floating else "cross-entropy"
    return F.mse_loss if spec == "mse" else F.cross_entropy


def _scored(model, inputs, console):
    """`model`, or a copy returning its first output tensor where it returns a tuple/dict."""
    from ..parser.trace import tensor_leaves

    with torch.no_grad():
        out = copy.deepcopy(model).eval()(*inputs)
    if isinstance(out, torch.Tensor):
        return model
    leaves = tensor_leaves(out)
    if not leaves:
        raise ConfigError(f"the model returns {type(out).__name__} with no tensor: nothing to score")
    console.print(f"the model returns {type(out).__name__}: scoring its first output tensor {tuple(leaves[0].shape)}")
    first = copy.deepcopy(model)
    first.register_forward_hook(lambda module, args, output: tensor_leaves(output)[0])
    return first


def _statistics(model, sd_a, sd_b) -> list[str]:
    """BatchNorm statistics the template has and a checkpoint lacks."""
    keys = [k for k in model.state_dict() if k.rsplit(".", 1)[-1] in _STATISTICS]
    return [k for k in keys if k not in sd_a or k not in sd_b]


def _element(args, model, parsed, sd_a, sd_b, data, console):
    from .. import align

    spec = parsed.spec
    gen = torch.Generator().manual_seed(args.seed)
    if args.method == "weight":
        m = align.weight_matching(spec, sd_a, sd_b, restarts=args.restarts, generator=gen)
        console.print(f"weight matching: objective {m.objective:.4g} after {m.sweeps} sweeps")
        return m.element
    if data is None:
        raise ConfigError(f"--method {args.method} needs --data")
    if args.method == "activation":
        return align.activation_matching(model, sd_a, sd_b, data, parsed=parsed)
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
    from ..align.data import input_batches
    from ..parser import parse_model

    console = Console()
    if args.plot and not args.data:
        raise ConfigError("--plot needs --data: the loss path is evaluated on labelled batches")
    model, inputs = model_and_inputs(args.model, "--model")
    data = list(import_target(args.data, "--data")()) if args.data else None
    labelled = data is not None and all(isinstance(b, (tuple, list)) and len(b) == 2 for b in data)
    if args.plot and not labelled:
        raise ConfigError("--plot needs --data to return (inputs, targets) batches")
    sd_a, sd_b = load(args.a), load(args.b)
    missing = _statistics(model, sd_a, sd_b)
    if missing and data is None:
        raise ConfigError(f"the checkpoints lack BatchNorm statistics ({missing[0]}, ...): "
                          "pass --data to recompute them")
    if args.reset_bn and data is None:
        raise ConfigError("--reset-bn needs --data")
    if missing:
        template = model.state_dict()
        sd_a = {**{k: template[k] for k in missing if k not in sd_a}, **sd_a}
        sd_b = {**{k: template[k] for k in missing if k not in sd_b}, **sd_b}
        console.print(f"the checkpoints lack {len(missing)} BatchNorm statistics: recomputed on --data")
    start = time.perf_counter()
    # one trace: activation matching reads its sites on the data's batch shape, so trace on that
    traced_on = next(input_batches(data, 1), inputs) if args.method == "activation" and data else inputs
    with console.status("tracing the model"), parser_warnings(console):
        parsed = parse_model(model, traced_on)
    spec = parsed.spec
    check_pair(sd_a, sd_b, spec)
    console.print(f"spec: {len(spec.groups)} groups over {len(spec.entries)} entries")
    with console.status(f"{args.method} matching"):
        g = _element(args, model, parsed, sd_a, sd_b, data, console)
    aligned = spec.apply(sd_b, g)
    from ..align.identity import output_change

    change = output_change(model, sd_b, aligned, inputs)
    merged = align.interpolate(sd_a, aligned, args.alpha)
    from ..align.bn_reset import has_batchnorm

    reset = data if (args.reset_bn or missing) and has_batchnorm(model) else None
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
    if labelled:
        alphas = [i / (args.steps - 1) for i in range(args.steps)]
        evaluate = Evaluator(_scored(model, inputs, console), data, loss_function(args.loss, data))
        try:
            evaluate(sd_a)
        except (TypeError, ValueError, RuntimeError, IndexError) as err:
            raise ConfigError(f"--loss {args.loss} cannot score this model's outputs against the --data targets "
                              f"({type(err).__name__}: {str(err).splitlines()[0][:160]}); "
                              "choose --loss mse, cross-entropy or MODULE:CALLABLE") from err
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
    if args.plot:
        align.plot_paths(paths, args.plot, title=f"{Path(args.a).stem} → {Path(args.b).stem}")
        console.print(f"plot written to {args.plot}")
    if args.out:
        from ..align.record import METADATA_KEY

        meta = {METADATA_KEY: g.to_json(), "weightspace.align.method": args.method,
                "weightspace.align.alpha": str(args.alpha)}
        save(merged, args.out, spec=spec, metadata=meta)
        console.print(f"merged model written to {args.out}")
    console.print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
