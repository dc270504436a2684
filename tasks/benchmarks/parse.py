"""Parse cost relative to `torch.export` alone, on a GPT-2-small-sized transformer and a
ResNet-50-sized CNN (random weights, built from `transformers` configs).

    python -m tasks.benchmarks.parse [--repeats 3] [--quick]

Baseline: `torch.export.export(model, inputs, strict=False)` on the same model in the
same run. Ours: `ws.parse(..., verify=False)` (target: at most 1.5x the export, i.e.
speedup >= 0.67) and `ws.parse(...)` with verification (at most 3x, speedup >= 0.33).
The JSON line reports the worse of the two models for each.
"""
from __future__ import annotations

import argparse
import gc
import json
import time
import warnings

import torch

import weightspace as ws


def gpt2_small(quick: bool):
    from transformers import GPT2Config, GPT2LMHeadModel

    layers, width, heads = (2, 256, 4) if quick else (12, 768, 12)
    cfg = GPT2Config(n_layer=layers, n_embd=width, n_head=heads, n_positions=128, vocab_size=50257)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(cfg).eval()
    model.config.use_cache = False
    ids = torch.randint(0, cfg.vocab_size, (1, 16), generator=torch.Generator().manual_seed(0))
    return model, (ids,)


def resnet50(quick: bool):
    from transformers import ResNetConfig, ResNetForImageClassification

    depths = [1, 1, 1, 1] if quick else [3, 4, 6, 3]
    cfg = ResNetConfig(layer_type="bottleneck", depths=depths, hidden_sizes=[256, 512, 1024, 2048],
                       embedding_size=64, num_labels=1000)
    torch.manual_seed(0)
    model = ResNetForImageClassification(cfg).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    return model, (x,)


def _timed(fn) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(name: str, model, inputs, repeats: int) -> dict:
    params = sum(p.numel() for p in model.parameters())
    torch.export.export(model, inputs, strict=False)  # warm-up: first-call costs are nobody's
    runs = {"export": [], "parse": [], "verify": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = ws.parse(model, inputs)
        for _ in range(repeats):  # interleaved, so load on the machine hits all three alike
            runs["export"].append(_timed(lambda: torch.export.export(model, inputs, strict=False)))
            runs["parse"].append(_timed(lambda: ws.parse(model, inputs, verify=False)))
            runs["verify"].append(_timed(lambda: ws.parse(model, inputs)))
    export, parse, verified = (min(runs[k]) for k in ("export", "parse", "verify"))
    row = {
        "model": name,
        "parameters": params,
        "groups": len(spec.groups),
        "verified": spec.verified,
        "verification": spec.notes[-1],
        "export_s": round(export, 3),
        "parse_s": round(parse, 3),
        "parse_verify_s": round(verified, 3),
        "parse_ratio": round(export / parse, 3),
        "parse_verify_ratio": round(export / verified, 3),
    }
    print(f"{name}: {params / 1e6:.1f}M parameters, {len(spec.groups)} groups; export {export:.2f}s, "
          f"parse {parse:.2f}s ({row['parse_ratio']:.2f}x), parse+verify {verified:.2f}s ({row['parse_verify_ratio']:.2f}x)")
    return row


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small versions of both models (smoke test)")


def main(args: argparse.Namespace) -> dict:
    rows = [measure("gpt2-small", *gpt2_small(args.quick), args.repeats),
            measure("resnet-50", *resnet50(args.quick), args.repeats)]
    worst = min(rows, key=lambda r: r["parse_ratio"])
    worst_verify = min(rows, key=lambda r: r["parse_verify_ratio"])
    result = {
        "name": "parse",
        "baseline": "torch.export.export(strict=False) on the same model, same run",
        "speedup": worst["parse_ratio"],
        "target": 0.67,
        "speedup_with_verification": worst_verify["parse_verify_ratio"],
        "target_with_verification": 0.33,
        "met": worst["parse_ratio"] >= 0.67 and worst_verify["parse_verify_ratio"] >= 0.33,
        "rows": rows,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    import sys

    from tasks.jobs import run_module

    sys.exit(run_module(sys.modules[__name__]))
