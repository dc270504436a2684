"""Peak memory of `weightspace merge` (streaming) vs loading every model, on a config-built HF GPT-2.

Builds N GPT-2 language models from one config with random weights (nothing is
downloaded), saves each as a Hugging Face folder of sharded safetensors, then runs in
fresh processes: (1) the interpreter with weightspace and its CLI's parser built (baseline),
(2) `weightspace merge ... --method ties --base` through the CLI entry point
(streaming), (3) the same merge in memory (`ws.load` of every model, `merge_models`,
`ws.save`). Each process reports its peak resident set size (ru_maxrss); the results
give the peaks above the baseline in MiB beside the size of one model. tracemalloc is
not used: torch allocates tensor memory outside Python's allocator, where it cannot see.

    python -m tasks.merge_digits.memory [--layers 8 --width 512 --models 4 --out DIR]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

MIB = 1024**2
_PEAK = "import resource; print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def _build(folder: Path, n: int, layers: int, width: int, vocab: int, shard: str) -> list[Path]:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_embd=width, n_layer=layers, n_head=8, n_positions=256, vocab_size=vocab,
                        bos_token_id=0, eos_token_id=0)
    paths = []
    for i in range(n + 1):
        torch.manual_seed(i)
        path = folder / ("base" if i == 0 else f"ft{i}")
        GPT2LMHeadModel(config).save_pretrained(path, max_shard_size=shard)
        paths.append(path)
    return paths


def _peak_kib(code: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-c", code + "\n" + _PEAK], capture_output=True, text=True, check=True)
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("PEAK"))
    return int(line.split()[1]), done.stdout


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=int, default=4, help="fine-tuned models merged (plus one base)")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=16000)
    parser.add_argument("--shard", default="20MB", help="input shard size (save_pretrained)")
    parser.add_argument("--out-shard", default="20MB", help="output shard size (weightspace merge)")
    parser.add_argument("--out", type=Path, default=Path("results/merge_memory"), help="results folder")


def main(args: argparse.Namespace) -> dict:
    from weightspace.io.save import write_json

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base, *tuned = _build(root, args.models, args.layers, args.width, args.vocab, args.shard)
        model_bytes = sum(p.stat().st_size for p in base.glob("*.safetensors"))
        baseline, _ = _peak_kib("import weightspace.merge; from weightspace.cli.main import build_parser; build_parser()")
        argv = ["merge", *map(str, tuned), "--base", str(base), "--method", "ties", "--density", "0.3",
                "--out", str(root / "streamed"), "--max-shard-size", args.out_shard]
        streamed, printed = _peak_kib(f"from weightspace.cli.main import main; assert main({argv!r}) == 0")
        in_memory, _ = _peak_kib(
            "import weightspace as ws; from weightspace.merge import merge_models\n"
            f"models = [ws.load(p) for p in {list(map(str, tuned))!r}]; base = ws.load({str(base)!r})\n"
            "sd = merge_models(models, 'ties', base=base, density=0.3).state_dict\n"
            f"ws.save(sd, {str(root / 'in_memory.safetensors')!r})"
        )
        import torch

        import weightspace as ws

        a, b = ws.load(root / "streamed"), ws.load(root / "in_memory.safetensors")
        equal = set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
        shards = len(list((root / "streamed").glob("*.safetensors")))
    result = {
        "config": {"layers": args.layers, "width": args.width, "vocab": args.vocab, "models": args.models,
                   "input_shard": args.shard, "output_shard": args.out_shard, "method": "ties (density 0.3)"},
        "model_mib": round(model_bytes / MIB, 1),
        "baseline_rss_mib": round(baseline / 1024, 1),
        "streaming_peak_above_baseline_mib": round((streamed - baseline) / 1024, 1),
        "in_memory_peak_above_baseline_mib": round((in_memory - baseline) / 1024, 1),
        "streamed_output_shards": shards,
        "streamed_equals_in_memory": equal,
        "cli_output": printed.strip().splitlines()[:-1],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "results.json", result)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    from tasks.jobs import run_module

    sys.exit(run_module(sys.modules[__name__]))
