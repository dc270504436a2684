"""Trajectory transfer on digits: GMT / FGMT vs naive transfer and the new init, before and after fine-tuning.

Chijiwa, *Transferring Learning Trajectories of Neural Networks* (ICLR 2024), on the
classifier zoo's digits MLP and small CNN (the zoo's 1,200 / 300 / 297 split, inputs
in [-1, 1]). Per seed, the zoo's batched trainer trains a source run and a target run
from their own inits together (Adam, fixed hyperparameters, checkpoints every
`--every` steps, `zoo.classifier_trainer.train_trajectory`). The source trajectory is
transferred to the target's init (gradients on 600 training digits), and measured:

- test accuracy of the transferred weights at several points, before any training, vs
  the new init, naive transfer (the un-permuted updates added), the source itself and
  the target trained for the same number of steps;
- steps of Adam (same settings, fresh state) until the validation accuracy reaches
  `--target`, from the transferred final point vs from the new init (and the naive point).

    weightspace run transfer-digits [--seeds 0 1 2] [--archs mlp cnn] [--out results/transfer_digits]
"""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from ..summary import seed_summary

POINTS = (0.25, 0.5, 0.75, 1.0)
METHODS = ("naive", "fgmt", "gmt")


def _data():
    from zoo.classifier_trainer import Split
    from zoo.datasets import load_dataset

    d = load_dataset("digits")
    x = d.values.unsqueeze(1)
    return {s: Split(x[d.indices(s)], d.labels[d.indices(s)]) for s in ("train", "val", "test")}


def _accuracy(cfg, sd: dict, split) -> float:
    from zoo.classifier_trainer import evaluate

    return float(evaluate(cfg, {k: v.unsqueeze(0) for k, v in sd.items()}, split)[0][0])


def steps_to(cfg, start: dict, sets: dict, target: float, lr: float, seed: int, cap: int, check: int = 5) -> int | None:
    """Adam steps (batch 64, order from `seed`) from `start` until validation accuracy >= target; None past `cap`."""
    from zoo import classifier_nets as nets

    params = {k: v.detach().clone().unsqueeze(0).requires_grad_(True) for k, v in start.items()}
    opt = torch.optim.Adam(params.values(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    train = sets["train"]
    order = torch.randperm(len(train.y), generator=gen)
    for step in range(cap + 1):
        if step % check == 0 and _accuracy(cfg, {k: v.detach()[0] for k, v in params.items()}, sets["val"]) >= target:
            return step
        if step == cap:
            return None
        pos = (step * 64) % len(train.y)
        if pos + 64 > len(train.y):
            order = torch.randperm(len(train.y), generator=gen)
        idx = order[pos : pos + 64]
        loss = F.cross_entropy(nets.forward(cfg, params, train.x[idx])[0], train.y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return None


def run_seed(arch: str, seed: int, args: argparse.Namespace) -> dict:
    import weightspace as ws
    from weightspace.align import loss_gradient, transfer_trajectory
    from zoo.classifier_nets import ClassifierConfig
    from zoo.classifier_trainer import Hyper, train_trajectory

    sets = _data()
    cfg = ClassifierConfig(arch, (1, 8, 8), args.width, 10)
    module = cfg.module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        spec = ws.parse(module, (sets["train"].x[:4],))
    n = 2
    hyper = Hyper(torch.full((n,), args.lr), torch.zeros(n), torch.full((n,), args.width), torch.zeros(n),
                  torch.ones(n), torch.full((n,), args.epochs))
    _, _, _, traj = train_trajectory(cfg, hyper, [2 * seed + 1, 2 * seed + 2], sets["train"], {"test": sets["test"]},
                                     (), args.every, args.epochs)
    run = lambda i: [{k: traj.weights[k][i, c] for k in cfg.keys} for c in range(len(traj.steps))]  # noqa: E731
    source, target = run(0), run(1)
    tr = sets["train"]
    gradient = loss_gradient(module, [(tr.x[i : i + 200], tr.y[i : i + 200]) for i in range(0, 600, 200)])
    last = len(source) - 1
    at = sorted({round(q * last) for q in POINTS})
    out: dict[str, float] = {"init": _accuracy(cfg, target[0], sets["test"])}
    for c in at:
        out[f"source@{traj.steps[c]}"] = _accuracy(cfg, source[c], sets["test"])
        out[f"target_trained@{traj.steps[c]}"] = _accuracy(cfg, target[c], sets["test"])
    finals = {}
    for method in METHODS:
        began = time.perf_counter()
        moved = transfer_trajectory(spec, source, target[0], gradient, method=method)
        out[f"{method}_seconds"] = time.perf_counter() - began
        for c in at:
            out[f"{method}@{traj.steps[c]}"] = _accuracy(cfg, moved.trajectory[c], sets["test"])
        finals[method] = moved.trajectory[-1]
    cap = args.cap
    for name, start in (("init", target[0]), *((m, finals[m]) for m in METHODS)):
        steps = steps_to(cfg, start, sets, args.target, args.lr, 1000 + seed, cap)
        out[f"steps_to_target_from_{name}"] = float(cap if steps is None else steps)
        out[f"reached_from_{name}"] = float(steps is not None)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--archs", nargs="+", choices=("mlp", "cnn"), default=["mlp", "cnn"])
    parser.add_argument("--width", type=int, default=32, help="hidden width / channels")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the source and target runs")
    parser.add_argument("--every", type=int, default=5, help="checkpoint every this many steps")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (runs and fine-tuning)")
    parser.add_argument("--target", type=float, default=0.9, help="validation accuracy to reach when fine-tuning")
    parser.add_argument("--cap", type=int, default=400, help="most fine-tuning steps (not reached: counted as cap)")
    parser.add_argument("--out", type=Path, default=Path("results/transfer_digits"), help="folder for results.json")


def _row(key: str, v: dict) -> str:
    if key.startswith(("steps", "reached")) or key.endswith("seconds"):
        return f"  {key:<32} {v['mean']:8.1f} ± {v['std']:5.1f}"
    return f"  {key:<32} {100 * v['mean']:7.2f}% ± {100 * v['std']:4.2f}"


def main(args: argparse.Namespace) -> dict:
    from weightspace.io.save import write_json

    torch.set_num_threads(1)
    start = time.perf_counter()
    result = {"seeds": list(args.seeds), "settings": {k: v for k, v in vars(args).items() if k in
              ("width", "epochs", "every", "lr", "target", "cap")},
              "metric": "test accuracy (297 held-out digits) / Adam steps to the validation target, mean ± std over seeds"}
    for arch in args.archs:
        result[arch] = seed_summary([run_seed(arch, s, args) for s in args.seeds])
    result["seconds"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "results.json", result)
    for arch in args.archs:
        print(arch)
        print("\n".join(_row(k, v) for k, v in result[arch].items()))
    print(f"written to {args.out / 'results.json'} in {result['seconds']} s")
    return result


if __name__ == "__main__":
    import sys

    from tasks.jobs import run_module

    sys.exit(run_module(sys.modules[__name__]))
