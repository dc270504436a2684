"""`weightspace merge MODELS... --method NAME --out OUT`: merge checkpoints, streaming.

Inputs are safetensors files, sharded indexes or Hugging Face folders (torch pickles
are loaded whole). Tensors are read one entry at a time and written shard by shard
(`--max-shard-size`), so memory stays near one output shard plus one entry per
input. `--align weight` first permutes every model onto the anchor (the base, else
the first model) with the spec from `--model MODULE:FACTORY` (returning (model,
example_inputs)) or the spec stored in the first checkpoint. `--method zipit` and
`--method cca` merge by the models' features instead (`weightspace.cli.merge_features`).
"""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from ..errors import ConfigError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "KI": 1024, "MI": 1024**2, "GI": 1024**3, "TI": 1024**4}


def shard_bytes(text: str) -> int:
    """'500MB', '2GiB', '1000000' -> bytes; ConfigError otherwise."""
    m = _SIZE.match(text)
    if not m:
        raise ConfigError(f"--max-shard-size {text!r}: expected a size such as 500MB or 2GiB")
    unit = m.group(2).upper().removesuffix("B")
    size = int(float(m.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ConfigError(f"--max-shard-size {text!r} must be positive")
    return size


def add_parser(sub) -> None:
    from ..merge.methods import METHODS
    from ..merge.zip import ZIP_METHODS

    p = sub.add_parser("merge", help="merge checkpoints (soups, SLERP, task arithmetic, TIES, DARE, model stock, "
                                     "ZipIt!, CCA)")
    p.add_argument("models", nargs="+", help="checkpoints to merge (safetensors, sharded index, HF folder)")
    p.add_argument("--method", required=True, choices=sorted(METHODS) + list(ZIP_METHODS), help="merge method")
    p.add_argument("--base", help="base checkpoint (task-vector methods: task_arithmetic, ties, dare, model_stock)")
    p.add_argument("--align", choices=("weight", "none"), default="none", help="permutation alignment first")
    p.add_argument("--model", help="MODULE:FACTORY returning (model, example_inputs), for the spec")
    p.add_argument("--data", help="zipit, cca: MODULE:FACTORY returning batches of one shape (the activations)")
    p.add_argument("--depth", type=int, help="zipit, cca: zip only the first N groups (partial zipping)")
    p.add_argument("--out", required=True, type=Path, help="output: a .safetensors file or a folder (HF layout)")
    p.add_argument("--weights", type=float, nargs="+", help="per-model weights (linear, task_arithmetic, dare)")
    p.add_argument("--t", type=float, help="slerp: position from the first model (0) to the second (1)")
    p.add_argument("--density", type=float, help="ties: fraction of each task vector kept")
    p.add_argument("--p", type=float, help="dare: drop probability")
    p.add_argument("--combine", choices=("linear", "ties"), help="dare: how the dropped task vectors are combined")
    p.add_argument("--scale", type=float, help="task_arithmetic, ties, dare: λ on the merged task vector")
    p.add_argument("--seed", type=int, default=0, help="dare's masks and weight matching's randomness")
    p.add_argument("--max-shard-size", default="2GiB", help="largest output shard (default 2GiB)")
    p.set_defaults(run=run)


def _options(args: argparse.Namespace) -> dict:
    from ..merge.methods import METHODS

    given = {name: getattr(args, name) for name in ("weights", "t", "density", "p", "combine", "scale")}
    options = {k: v for k, v in given.items() if v is not None}
    if args.method == "dare":
        options["seed"] = args.seed
    allowed = set(METHODS[args.method].kernel.__kwdefaults__ or {})
    extra = sorted(set(options) - allowed)
    if extra:
        raise ConfigError(f"--method {args.method} takes no {', '.join('--' + k for k in extra)}")
    return options


def _spec(args: argparse.Namespace):
    from rich.console import Console

    from ..io import load_spec
    from ..parser import parse
    from .factory import model_and_inputs, parser_warnings

    if args.model:
        model, inputs = model_and_inputs(args.model, "--model")
        with parser_warnings(Console(stderr=True)):
            return parse(model, inputs)
    spec = load_spec(args.models[0])
    if spec is None and args.align != "none":
        raise ConfigError("--align weight needs --model MODULE:FACTORY or a spec stored in the first checkpoint")
    return spec


def run(args: argparse.Namespace) -> int:
    import torch

    from ..merge import merge_files
    from ..merge.zip import ZIP_METHODS

    if args.method in ZIP_METHODS:
        from .merge_features import run_features

        return run_features(args)
    if args.data is not None or args.depth is not None:
        raise ConfigError(f"--data and --depth apply to --method zipit or cca, not {args.method}")
    start = time.perf_counter()
    options = _options(args)
    spec = _spec(args) if args.align != "none" or args.model else None
    report = merge_files(
        args.models, args.out, args.method, base=args.base, spec=spec, align=args.align,
        max_shard_bytes=shard_bytes(args.max_shard_size), generator=torch.Generator().manual_seed(args.seed), **options,
    )
    mb = 1024**2
    print(f"merged {len(args.models)} models with {args.method} (align: {args.align}) into {args.out}: "
          f"{len(report.files)} files")
    print(f"model {report.model_bytes / mb:.1f} MiB, largest entry {report.largest_entry_bytes / mb:.1f} MiB; "
          f"held at most {report.peak_merge_bytes / mb:.1f} MiB while merging"
          + (f", {report.peak_align_bytes / mb:.1f} MiB while aligning" if report.peak_align_bytes else "")
          + f"; {time.perf_counter() - start:.1f} s")
    return 0
