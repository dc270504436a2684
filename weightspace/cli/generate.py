"""`weightspace generate --model GEN --from INIT --target-loss L --out OUT`: prompt a checkpoint generator.

GEN is a generator written by `weightspace.generate.save_generator`; INIT a
safetensors checkpoint of the generator's spec (a key or shape that does not match
is an error naming the key). The output is a new safetensors file holding the
generated checkpoint with the spec and the prompt in its metadata; an existing
file is never overwritten. "Loss" is whatever metric the generator was trained to
condition on. Only safetensors files are read, never a pickle.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import CheckpointError, OutputExistsError

META_PREFIX = "weightspace.generate."


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="generate a checkpoint with a prompted loss from a start checkpoint (G.pt)")
    p.add_argument("--model", required=True, type=Path, help="the generator (.safetensors, from save_generator)")
    p.add_argument("--from", dest="start", required=True, type=Path, help="the start checkpoint (.safetensors)")
    p.add_argument("--target-loss", required=True, type=float, help="the prompted metric")
    p.add_argument("--start-loss", type=float,
                   help="the start checkpoint's metric (default: the mean over the training runs' inits)")
    p.add_argument("--iterations", type=int, default=1, help="prompt this many times, each output the next start")
    p.add_argument("--steps", type=int, default=50, help="DDIM sampling steps (default 50)")
    p.add_argument("--seed", type=int, default=0, help="the sampler's noise")
    p.add_argument("--out", required=True, type=Path, help="the generated checkpoint (.safetensors, must not exist)")
    p.set_defaults(run=run)


def _safetensors(path: Path, what: str) -> Path:
    if path.suffix != ".safetensors":
        raise CheckpointError(path, f"{what} must be a .safetensors file (generate never loads pickles)")
    return path


def run(args: argparse.Namespace) -> int:
    from ..generate import generate, load_generator
    from ..io import load, save
    from ..io.paths import check_output

    out = check_output(_safetensors(args.out, "--out"), [args.model, args.start])
    if out.exists():
        raise OutputExistsError(out)
    model = load_generator(_safetensors(args.model, "--model"))
    start = load(_safetensors(args.start, "--from"))
    model.spec.check(start, where=f"--from {args.start} (against the generator's spec)")
    new = generate(model, start, args.target_loss, start_metric=args.start_loss, iterations=args.iterations,
                   steps=args.steps, seed=args.seed)
    meta = {
        META_PREFIX + "target_loss": repr(args.target_loss),
        META_PREFIX + "start_loss": repr(args.start_loss),
        META_PREFIX + "iterations": str(args.iterations),
        META_PREFIX + "steps": str(args.steps),
        META_PREFIX + "seed": str(args.seed),
        META_PREFIX + "from": args.start.name,
    }
    save(new, out, spec=model.spec, metadata=meta)
    print(f"generated checkpoint written to {out} (target loss {args.target_loss:g}, "
          f"{args.iterations} iteration(s), {args.steps} DDIM steps)")
    return 0
