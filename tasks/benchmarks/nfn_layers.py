"""Throughput of weightspace's NFN/UNF invariant classifiers vs the `nfn` package (PyPI).

Identical settings for every model: SIREN 2-32-32-1 weights (the spec comes from
`ws.parse` on `weightspace.examples.siren()`), batch 256, three equivariant layers of
32 channels with ReLU, invariant pooling, the same MLP head (pooled -> 256 -> 10),
cross-entropy loss. We time forward + backward, interleaving the models round by
round (the machine may be shared) and taking each model's median round.

Pairs compared at (near) equal parameter count:
- ours NPLinear classifier  vs  nfn.layers.NPLinear classifier (NP group);
- ours UNF classifier (= HNP space on this chain spec) vs nfn.layers.HNPLinear classifier.
The headline `speedup` is the NP pair (nfn time / our time); the HNP/UNF pair is reported
beside it. Without the `nfn` package (`pip install -e '.[bench]'`) the benchmark stops
with a MissingDependencyError before timing anything. (The module is not named `nfn`,
so that running it by path cannot shadow the package it compares against.)

    python -m tasks.benchmarks.nfn_layers [--batch 256] [--rounds 5] [--iters 2]
    weightspace run bench-nfn
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

import weightspace as ws
from weightspace.examples import siren
from weightspace.errors import MissingDependencyError
from weightspace.nn import InvariantClassifier, WeightSpaceBatch, metanet_spec
from weightspace.testing import random_weights

CHANNELS = (32, 32, 32)
HEAD_HIDDEN = 256
CLASSES = 10


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _require_nfn() -> None:
    """MissingDependencyError when the nfn package (this benchmark's only baseline) is not importable."""
    try:
        import nfn.common  # noqa: F401
        import nfn.layers  # noqa: F401
    except ImportError as err:
        raise MissingDependencyError(
            f"the nfn benchmark compares against the `nfn` package, which is not importable ({err}); "
            "install it with pip install -e '.[bench]' (or pip install nfn)"
        ) from err


def _nfn_models(spec, stacked: dict[str, torch.Tensor]):
    """nfn-package classifiers and their input."""
    from nfn.common import WeightSpaceFeatures, network_spec_from_wsfeat
    from nfn.layers import HNPLinear, HNPPool, NPLinear, NPPool, TupleOp

    weights = [stacked[f"{i}.weight"].unsqueeze(1) for i in (0, 2, 4)]
    biases = [stacked[f"{i}.bias"].unsqueeze(1) for i in (0, 2, 4)]
    feats = WeightSpaceFeatures(weights, biases)
    nspec = network_spec_from_wsfeat(feats)

    def classifier(linear, pool):
        layers: list[nn.Module] = []
        widths = (1, *CHANNELS)
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [linear(nspec, a, b), TupleOp(nn.ReLU())]
        pooled = CHANNELS[-1] * pool.get_num_outs(nspec)
        layers += [pool(nspec), nn.Flatten(-2), nn.Linear(pooled, HEAD_HIDDEN), nn.ReLU(), nn.Linear(HEAD_HIDDEN, CLASSES)]
        return nn.Sequential(*layers)

    return {"nfn NP": (classifier(NPLinear, NPPool), feats), "nfn HNP": (classifier(HNPLinear, HNPPool), feats)}


def _step(model: nn.Module, x, labels: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), labels)
    loss.backward()


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=2, help="forward+backward steps per model per round")


def main(args: argparse.Namespace) -> dict:
    _require_nfn()
    torch.manual_seed(0)
    model, inputs = siren((2, 32, 32, 1)), (torch.rand(16, 2) * 2 - 1,)
    spec = metanet_spec(ws.parse(model, inputs))
    gen = torch.Generator().manual_seed(0)
    stacked = {k: v * 0.3 for k, v in random_weights(spec, gen, (args.batch,)).items()}
    batch = WeightSpaceBatch.from_stacked(spec, stacked)
    labels = torch.randint(0, CLASSES, (args.batch,), generator=gen)

    models = {
        "ours NP": (InvariantClassifier(spec, CLASSES, CHANNELS, layer="np", hidden=(HEAD_HIDDEN,)), batch),
        "ours UNF": (InvariantClassifier(spec, CLASSES, CHANNELS, layer="unf", hidden=(HEAD_HIDDEN,)), batch),
    }
    models.update(_nfn_models(spec, stacked))

    for m, x in models.values():
        for _ in range(2):
            _step(m, x, labels)
    rounds: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, (m, x) in models.items():
            t = time.perf_counter()
            for _ in range(args.iters):
                _step(m, x, labels)
            rounds[name].append((time.perf_counter() - t) / args.iters)
    per_step = {name: statistics.median(v) for name, v in rounds.items()}
    rows = {
        name: {"params": _params(m), "sec_per_step": per_step[name], "samples_per_s": args.batch / per_step[name]}
        for name, (m, _) in models.items()
    }
    print(f"SIREN 2-32-32-1 weights, batch {args.batch}, layers {CHANNELS}, head {HEAD_HIDDEN}, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} rounds x {args.iters} steps")
    for name, r in rows.items():
        print(f"  {name:32s} params {r['params']:>8d}   {r['samples_per_s']:9.1f} samples/s")

    np_speedup = per_step["nfn NP"] / per_step["ours NP"]
    hnp_speedup = per_step["nfn HNP"] / per_step["ours UNF"]
    print(f"  NP pair: {np_speedup:.2f}x (params {rows['ours NP']['params']} vs {rows['nfn NP']['params']})")
    print(f"  UNF vs nfn HNP: {hnp_speedup:.2f}x (params {rows['ours UNF']['params']} vs {rows['nfn HNP']['params']})")
    result = {
        "name": "nfn",
        "baseline": "nfn (PyPI) NPLinear invariant classifier, same settings, same run",
        "speedup": np_speedup,
        "target": 1.5,
        "met": np_speedup >= 1.5,
        "speedup_unf_vs_nfn_hnp": hnp_speedup,
        "params": {name: r["params"] for name, r in rows.items()},
        "rows": rows,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    import sys

    from tasks.jobs import run_module

    sys.exit(run_module(sys.modules[__name__]))
