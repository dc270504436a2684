"""Merge digits classifiers: naive vs aligned merges of different inits; task-vector methods on fine-tunes.

Two settings on scikit-learn's digits (embedded), 3 seeds each:

- different inits: two MLPs and two CNN+BN from their own inits, trained on the same
  data; naive linear merge vs linear and SLERP after weight matching and after activation
  matching, ZipIt! and CCA Merge (full, and partial zipping: the first group zipped, the
  rest kept separate; depth 0, nothing zipped, is the two-model ensemble) (BatchNorm
  statistics reset on training data for the CNN), test accuracy; two MLPs and two CNN+BN
  from their own inits trained on digits 0-4 and 5-9 (the ZipIt! setting), joint accuracy
  on all ten; and three MLPs from their own inits (CCA's many-model setting).
- same-init fine-tunes: a base trained briefly on all digits, fine-tuned on digits 0-4
  and on 5-9; linear, task arithmetic, TIES, DARE (linear and TIES), model stock, each
  without and with weight alignment to the base; joint test accuracy on all ten digits.

    weightspace run merge-digits [--seeds 0 1 2] [--out results/merge_digits]
"""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch

from weightspace.align.modules import with_weights
from weightspace.merge import merge_models, zip_models

from ..summary import seed_summary
from .data import accuracy, build, digits, train

TUNE_METHODS = {
    "linear": {},
    "task_arithmetic": {"scale": 1.0},
    "ties": {"density": 0.2, "scale": 1.0},
    "dare_linear": {"p": 0.5, "combine": "linear"},
    "dare_ties": {"p": 0.5, "combine": "ties"},
    "model_stock": {},
}


def _spec(model, x):
    import weightspace as ws

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return ws.parse(model, (x[:60],))


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


ZIP_RUNS = {"zipit": ("zipit", None), "zipit_depth1": ("zipit", 1), "cca": ("cca", None), "cca_depth1": ("cca", 1),
            "ensemble_depth0": ("zipit", 0)}


@torch.no_grad()
def _module_accuracy(net, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((net.eval()(x).argmax(1) == y).float().mean())


def different_inits(kind: str, seed: int, halves: bool = False, models: int = 2) -> dict[str, float]:
    """Test accuracy (all ten digits) of the endpoints and of each merge of independently initialised
    models, trained on all digits or (`halves`, two models) on digits 0-4 and 5-9."""
    import weightspace as ws

    x, y, xt, yt = digits()
    epochs = {"mlp": 30, "cnn_bn": 8}[kind]
    keep = [torch.isin(y, torch.arange(0, 5)), torch.isin(y, torch.arange(5, 10))] if halves else [slice(None)] * models
    nets = [train(build(kind, models * seed + i + 1), x[keep[i]], y[keep[i]], models * seed + i + 1, epochs)
            for i in range(models)]
    a = nets[0]
    spec = _spec(a, x)
    sds = [_state(net) for net in nets]
    data = [(x[i : i + 200], y[i : i + 200]) for i in range(0, 1200, 200)]
    out = {f"model_{'ab'[i] if models == 2 else i}": accuracy(a, sd, xt, yt) for i, sd in enumerate(sds)}
    runs = {
        "naive_linear": ("linear", "none", {}),
        "weight_linear": ("linear", "weight", {}),
        "weight_slerp": ("slerp", "weight", {"t": 0.5}),
        "activation_linear": ("linear", "activation", {}),
    }
    for name, (method, how, options) in runs.items():
        if method == "slerp" and models != 2:
            continue
        merged = merge_models(sds, method, spec=spec, align=how, model=a, batches=data, **options)
        out[name] = accuracy(a, merged.state_dict, xt, yt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        parsed = ws.parse_model(a, (x[:200],))
    for name, (method, depth) in ZIP_RUNS.items():
        if depth is not None and models != 2:
            continue
        zipped = zip_models(sds, a, data, method=method, parsed=parsed, depth=depth)
        out[name] = _module_accuracy(zipped.module(a), xt, yt)
    return out


def fine_tunes(seed: int) -> dict[str, float]:
    """Joint test accuracy of the base, both fine-tunes, and each method without and with weight alignment."""
    x, y, xt, yt = digits()
    base_model = train(build("mlp", 100 + seed), x, y, 100 + seed, epochs=2)
    base = _state(base_model)
    tunes = []
    for i, classes in enumerate((range(0, 5), range(5, 10))):
        keep = torch.isin(y, torch.tensor(list(classes)))
        tuned = with_weights(base_model, base)
        tunes.append(_state(train(tuned, x[keep], y[keep], 10 * seed + i, epochs=10, lr=1e-3)))
    spec = _spec(base_model, x)
    out = {"base": accuracy(base_model, base, xt, yt), "finetune_0_4": accuracy(base_model, tunes[0], xt, yt),
           "finetune_5_9": accuracy(base_model, tunes[1], xt, yt)}
    for name, options in TUNE_METHODS.items():
        method = "dare" if name.startswith("dare") else name
        for how in ("none", "weight"):
            merged = merge_models(tunes, method, base=None if method == "linear" else base, spec=spec,
                                  align=how, **({"seed": seed} if method == "dare" else {}), **options)
            out[f"{name}{'' if how == 'none' else '+weight'}"] = accuracy(base_model, merged.state_dict, xt, yt)
            if how == "weight" and name == "linear":
                out["units_moved_aligning_finetunes_to_base"] = float(sum(
                    int((p != torch.arange(len(p))).sum()) for g in merged.elements for p in g.perms.values()))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("results/merge_digits"), help="folder for results.json")


def _table(title: str, summary: dict[str, dict[str, float]]) -> str:
    rows = [title, *(f"  {k:<24} {100 * v['mean']:6.2f} ± {100 * v['std']:4.2f}" if not k.startswith("units")
                     else f"  {k:<24} {v['mean']:.0f}" for k, v in summary.items())]
    return "\n".join(rows)


def main(args: argparse.Namespace) -> dict:
    from weightspace.io.save import write_json

    torch.set_num_threads(1)
    start = time.perf_counter()
    result = {"seeds": list(args.seeds), "metric": "test accuracy (597 held-out digits), mean and std over seeds"}
    for kind in ("mlp", "cnn_bn"):
        result[f"different_inits_{kind}"] = seed_summary([different_inits(kind, s) for s in args.seeds])
    for kind in ("mlp", "cnn_bn"):
        result[f"different_inits_{kind}_disjoint_halves"] = seed_summary(
            [different_inits(kind, s, halves=True) for s in args.seeds])
    result["different_inits_mlp_three_models"] = seed_summary([different_inits("mlp", s, models=3) for s in args.seeds])
    result["finetunes_mlp_joint"] = seed_summary([fine_tunes(s) for s in args.seeds])
    result["seconds"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "results.json", result)
    for key in ("different_inits_mlp", "different_inits_cnn_bn", "different_inits_mlp_disjoint_halves",
                "different_inits_cnn_bn_disjoint_halves", "different_inits_mlp_three_models", "finetunes_mlp_joint"):
        print(_table(key, result[key]))
    print(f"written to {args.out / 'results.json'} in {result['seconds']} s")
    return result


if __name__ == "__main__":
    import sys

    from tasks.jobs import run_module

    sys.exit(run_module(sys.modules[__name__]))
