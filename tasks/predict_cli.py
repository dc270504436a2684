"""Classify INR checkpoints with a trained metanetwork (saved by inr-classify under OUT/models/).

    weightspace predict --metanet clf.safetensors INR...      (also: weightspace run predict ...)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from weightspace.errors import ConfigError


def add_parser(sub) -> None:
    """The `predict` command (registered through the `weightspace.commands` entry point)."""
    from .jobs import add_job_parser

    add_job_parser(sub, "predict", "predict")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metanet", type=Path, required=True, help="a saved classifier (.safetensors; its config is in the metadata)")
    p.add_argument("inrs", type=Path, nargs="+", help="INR checkpoints (any format weightspace.load reads)")
    p.add_argument("--top", type=int, default=3, help="classes shown per INR")
    p.add_argument("--pixel-range", type=float, nargs=2, default=(-1.0, 1.0), metavar=("LO", "HI"),
                   help="the range of the pixel values the INRs were fitted to (zoo INRs: -1 1; e.g. 0 1)")


def rebuild(config: dict):
    """An INR classifier from its saved config."""
    from .inr_classify.data import InrContext
    from .inr_classify.models import CHOICES

    return CHOICES[config["model"]].build(InrContext.from_config(config))


def to_zoo_range(sd: dict[str, torch.Tensor], last: tuple[str, str], pixel_range: tuple[float, float]) -> dict[str, torch.Tensor]:
    """An INR fitted to pixels in `pixel_range` as the INR of the same image in [-1, 1]
    (the zoo's range): the affine map folds into the output layer (`last`: its weight
    and bias keys), as `zoo.importers.to_siren` folds DWSNets' output offset."""
    lo, hi = pixel_range
    if hi <= lo:
        raise ConfigError(f"pixel range ({lo}, {hi}): expected LO < HI")
    if (lo, hi) == (-1.0, 1.0):
        return sd
    scale = 2.0 / (hi - lo)
    weight, bias = last
    return {**sd, weight: sd[weight] * scale, bias: (sd[bias] - lo) * scale - 1.0}


def classify(metanet: Path, inrs: list[dict[str, torch.Tensor]],
             pixel_range: tuple[float, float] = (-1.0, 1.0), names: list[str] | None = None) -> torch.Tensor:
    """Class probabilities (N, classes) for INR state dicts fitted to pixels in `pixel_range`;
    `names` (e.g. the files) say which INR a shape or key error is about."""
    from .inr_classify.data import InrContext
    from .inr_classify.models import CHOICES
    from .metanet_io import load_metanet

    model, config = load_metanet(metanet, {"inr-classify": rebuild})
    context = InrContext.from_config(config)
    choice = CHOICES[config["model"]]
    names = names if names is not None else [f"INR #{i}" for i in range(len(inrs))]
    for name, sd in zip(names, inrs):
        context.spec.check({k: v for k, v in sd.items() if k in context.spec.entries}, where=str(name))
    last = tuple(context.siren.keys[-2:])
    inrs = [to_zoo_range(sd, last, tuple(pixel_range)) for sd in inrs]
    weights = {k: torch.stack([sd[k].float() for sd in inrs]) for k in context.spec.entries}
    x = {"pixels": context.render(weights)} if choice.reads == "pixels" else weights
    with torch.no_grad():
        return torch.softmax(model(choice.prepare(context)(x)), dim=-1)


def main(args: argparse.Namespace) -> int:
    import weightspace as ws

    probs = classify(args.metanet, [ws.load(p) for p in args.inrs], tuple(args.pixel_range),
                     names=[str(p) for p in args.inrs])
    for path, p in zip(args.inrs, probs):
        top = torch.topk(p, min(args.top, p.numel()))
        shown = ", ".join(f"{int(c)} ({float(v):.2f})" for v, c in zip(top.values, top.indices))
        print(f"{path}: {shown}")
    return 0
