"""`weightspace merge A B --method zipit|cca --model MODULE:FACTORY --data MODULE:FACTORY --out OUT`.

Feature-matching merges read the models' activations, so they need the template model
(a factory returning (model, example_inputs)) and data (a factory returning batches
of one shape); the checkpoints are loaded whole. `--depth N` zips only the first N
groups in forward order (partial zipping): the merged model is wider in the others,
and its spec is not stored then.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import ConfigError

FLAGS = ("base", "weights", "t", "density", "p", "combine", "scale")


def check_arguments(args: argparse.Namespace) -> None:
    """ConfigError for flags that do not apply to a feature-matching merge, or missing --model / --data."""
    given = [f"--{name}" for name in FLAGS if getattr(args, name) is not None]
    if given:
        raise ConfigError(f"--method {args.method} takes no {', '.join(given)}")
    if args.align != "none":
        raise ConfigError(f"--method {args.method} matches features itself: drop --align {args.align}")
    if not args.model or not args.data:
        raise ConfigError(f"--method {args.method} needs --model MODULE:FACTORY and --data MODULE:FACTORY")
    if len(args.models) < 2:
        raise ConfigError(f"--method {args.method} merges at least two models")
    if not str(args.out).endswith(".safetensors"):
        raise ConfigError(f"--method {args.method} writes one .safetensors file; got --out {args.out}")


def run_features(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..align.data import split_batch
    from ..io import load, save
    from ..io.paths import check_output
    from ..merge import zip_models
    from ..parser import parse_model
    from .factory import import_target, model_and_inputs, parser_warnings

    start = time.perf_counter()
    check_arguments(args)
    out = check_output(Path(args.out), args.models)
    model, _ = model_and_inputs(args.model, "--model")
    data = list(import_target(args.data, "--data")())
    if not data:
        raise ConfigError(f"--data {args.data} returned no batches")
    with parser_warnings(Console(stderr=True)):
        parsed = parse_model(model, split_batch(data[0])[0])
    models = [load(p) for p in args.models]
    result = zip_models(models, model, data, method=args.method, parsed=parsed, depth=args.depth)
    widened = {n: s for n, s in result.sizes.items() if s != parsed.spec.groups[n].size}
    meta = {"weightspace.merge.method": args.method, "weightspace.merge.zipped": ",".join(result.zipped)}
    save(result.state_dict, out, spec=None if widened else parsed.spec, metadata=meta)
    print(f"merged {len(models)} models with {args.method} into {out}: zipped {len(result.zipped)} of "
          f"{len(result.sizes)} groups" + (f", {len(widened)} kept separate (wider)" if widened else "")
          + f"; {result.postprocess}; {time.perf_counter() - start:.1f} s")
    return 0
