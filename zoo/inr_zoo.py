"""Build a zoo of SIREN INRs, one (or several views) per sample of a dataset.

Recipes (measured in issue 4; `zoo diagnose` shows what each can teach):
    shared init + permute   (default) every INR starts from one init, then a random
                            group element drawn from the spec is applied to each
                            fitted INR (function unchanged): the permutation is the
                            only nuisance, the clean test of a symmetry-aware model.
    independent init        each INR its own init, as users' INRs and the field's
                            benchmarks are made (`--dataset mnist --init independent`
                            is the realistic regime of issue 16); on exact 8×8 fits
                            the weights are mostly init noise.
    shared init, no permute a leak control: flattened weights read the answer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import weightspace as ws
from weightspace.spec import GroupElement, WeightSpec

from . import builder, siren
from .datasets import SPLITS, SignalSet, load_dataset
from .distributed import Ranks
from weightspace.errors import ZooError
from .inr_trainer import FitSettings, fit
from .siren import SirenConfig
from .storage import ELEMENT_PREFIX, INIT_PREFIX

INITS = ("shared", "independent")
_PURPOSE_INIT, _PURPOSE_ELEMENT = 1, 2


@dataclass(frozen=True)
class InrRecipe:
    """How INRs are made: init sharing, symmetry draws, views, fitting.

    Args:
        init: "shared" (one init for every INR) or "independent" (one per INR).
        permute: apply a random permutation from the spec to each fitted INR.
        signs: also draw the sign flips the spec records (sin is odd); needs permute.
        views: INRs per sample, with different seeds (all in the sample's split).
        upsample: resample the signals to this size per axis first (None: as is).
        steps, lr, target_psnr: Adam fitting (stop a network early at target_psnr dB).
        seed: the root of every per-network seed.
        store_init: keep each INR's (group-transformed) init, for `zoo diagnose`.
    """

    init: str = "shared"
    permute: bool = True
    signs: bool = False
    views: int = 1
    upsample: int | None = None
    steps: int = 300
    lr: float = 1e-3
    target_psnr: float | None = None
    seed: int = 0
    store_init: bool = True

    def __post_init__(self):
        if self.init not in INITS:
            raise ZooError(f"unknown init recipe {self.init!r}; expected one of {INITS}")
        if self.views < 1 or self.steps < 1:
            raise ZooError(f"views and steps must be >= 1, got {self.views} and {self.steps}")
        if self.signs and not self.permute:
            raise ZooError("signs=True draws a full group element; it needs permute=True")

    @property
    def name(self) -> str:
        if self.init == "independent":
            return "independent"
        return "shared+permuted" if self.permute else "shared (leak control)"


def derived_seed(root: int, network: int, purpose: int) -> int:
    """A 63-bit seed for one network and purpose, independent of chunking."""
    return int(np.random.SeedSequence([root, network, purpose]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def init_seeds(recipe: InrRecipe, networks: range) -> list[int]:
    if recipe.init == "shared":
        return [derived_seed(recipe.seed, 0, _PURPOSE_INIT)] * len(networks)
    return [derived_seed(recipe.seed, j, _PURPOSE_INIT) for j in networks]


def draw_elements(spec: WeightSpec, recipe: InrRecipe, networks: range) -> GroupElement:
    """One group element per network, each from its own seeded generator, stacked."""
    drawn = [
        spec.random_element(torch.Generator().manual_seed(derived_seed(recipe.seed, j, _PURPOSE_ELEMENT)), extra=recipe.signs)
        for j in networks
    ]
    return GroupElement.stack(drawn)


def siren_spec(cfg: SirenConfig, coords: torch.Tensor) -> WeightSpec:
    """The SIREN's spec, traced and verified by `weightspace.parse`."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return ws.parse(cfg.module(), (coords[:16],))


def make_inr_shard(
    data: SignalSet, cfg: SirenConfig, recipe: InrRecipe, spec: WeightSpec, start: int, stop: int, device: str | None = None
) -> tuple[dict[str, torch.Tensor], dict]:
    """Fit networks [start, stop) (network j = sample j // views, view j % views); device None: CUDA when present."""
    nets = range(start, stop)
    samples = torch.tensor([j // recipe.views for j in nets])
    coords = data.coords()
    init = siren.init_stack(cfg, init_seeds(recipe, nets))
    settings = FitSettings(recipe.steps, recipe.lr, recipe.target_psnr)
    weights, result = fit(cfg, init, coords, data.targets()[samples], settings, device=device)
    tensors: dict[str, torch.Tensor] = {}
    if recipe.permute:
        g = draw_elements(spec, recipe, nets)
        weights = spec.apply(weights, g, batch_dims=1)
        init = spec.apply(init, g, batch_dims=1)
        tensors.update(g.to_tensors(ELEMENT_PREFIX))
    tensors.update(weights)
    if recipe.store_init:
        tensors.update({INIT_PREFIX + k: v for k, v in init.items()})
    content = {
        "networks": {
            "sample": samples.tolist(),
            "view": [j % recipe.views for j in nets],
            "label": data.labels[samples].tolist(),
            "split": [SPLITS[int(s)] for s in data.split[samples]],
        },
        "metrics": {
            "psnr": [round(float(p), 4) for p in result.psnr],
            "mse": [float(m) for m in result.mse],
            "steps": result.steps.tolist(),
        },
    }
    return tensors, content


def inr_job(
    out: Path,
    dataset: str,
    recipe: InrRecipe,
    cfg: SirenConfig | None = None,
    chunk: int = 256,
    limit: int | None = None,
    command: list[str] | None = None,
    device: str | None = None,
) -> builder.BuildJob:
    """The build job of an INR zoo (run it with `builder.run`). limit: first N samples only.

    device: where to fit ("cpu", "cuda"; None: CUDA when present). It is not part of
    the plan: a build may resume on another device (results agree to float rounding).
    """
    data = load_dataset(dataset, recipe.upsample)
    if limit is not None:
        data = SignalSet(data.name, data.values[:limit], data.labels[:limit], data.split[:limit], data.classes)
    cfg = cfg or SirenConfig(widths=(len(data.grid), 32, 32, 1))
    if cfg.widths[0] != len(data.grid) or cfg.widths[-1] != 1:
        raise ZooError(f"a SIREN for {len(data.grid)}-D grayscale signals needs widths ({len(data.grid)}, …, 1), got {cfg.widths}")
    spec = siren_spec(cfg, data.coords())
    plan = {
        "kind": "inr",
        "dataset": dataset,
        "limit": limit,
        "recipe": asdict(recipe),
        "architecture": cfg.to_dict(),
        "chunk": chunk,
    }

    def describe(merged: dict) -> dict:
        psnr = np.asarray(merged["metrics"]["psnr"])
        return {
            "kind": "inr",
            "recipe_name": recipe.name,
            "architecture": cfg.to_dict(),
            "spec": spec.to_dict(),
            "weight_keys": cfg.keys,
            "dataset": {**data.describe(), "source": dataset},
            "recipe": asdict(recipe),
            "summary": {"psnr_mean": float(psnr.mean()), "psnr_min": float(psnr.min()), "psnr_median": float(np.median(psnr))},
        }

    return builder.BuildJob(
        Path(out),
        plan,
        len(data) * recipe.views,
        chunk,
        lambda a, b: make_inr_shard(data, cfg, recipe, spec, a, b, device),
        describe,
        command or [],
    )


def build_inr_zoo(out: Path, dataset: str = "digits", recipe: InrRecipe = InrRecipe(), ranks: Ranks = Ranks(), **kw) -> dict | None:
    """Build (or resume) an INR zoo in `out`; returns the manifest on rank 0."""
    max_shards = kw.pop("max_shards", None)
    progress = kw.pop("progress", True)
    return builder.run(inr_job(out, dataset, recipe, **kw), ranks, max_shards=max_shards, progress=progress)
