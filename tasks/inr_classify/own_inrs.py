"""Users' own INRs: test images of a main-job zoo fitted again by a plain per-network
torch loop (another init, learning rate and budget), classified by the job's saved
models next to the zoo's own INRs of the same images.

    python -m tasks.inr_classify.own_inrs --run runs/inr-classify --n 100 --steps 400 --lr 5e-4

Writes RUN/own_inrs_STEPSxLR.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from zoo import SirenConfig
from zoo.datasets import grid_coords


def fit_own_inr(image: torch.Tensor, seed: int, steps: int, lr: float, pixel_range=(-1.0, 1.0),
                cfg: SirenConfig = SirenConfig()) -> dict:
    """A user's SIREN fit, independent of zoo.siren: nn.Linear layers drawn from torch's
    global RNG with the init scheme `cfg` names (first layer U(±1/in) for "siren", the
    hidden rule U(±√(6/in)/ω0) for "hidden", nn.Linear's own for "torch"; biases zeroed
    for "zero", else nn.Linear's), a plain autograd Adam loop on the image scaled to
    `pixel_range`."""
    torch.manual_seed(seed)
    net = cfg.module()
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for i, layer in enumerate(linears):
            if i == 0 and cfg.first_init == "torch":
                continue
            first = i == 0 and cfg.first_init == "siren"
            bound = 1 / layer.in_features if first else (6 / layer.in_features) ** 0.5 / cfg.w0
            layer.weight.uniform_(-bound, bound)
            if cfg.bias_init == "zero":
                layer.bias.zero_()
    lo, hi = pixel_range
    target = (image.reshape(-1, 1) + 1) / 2 * (hi - lo) + lo
    coords = grid_coords(tuple(image.shape))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(coords), target).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def measure(run: Path, n: int, steps: int, lr: float, progress: bool = True) -> dict:
    """Accuracy of every saved model of `run` on n refitted test INRs and on the zoo's."""
    from tqdm import tqdm

    from tasks.predict_cli import classify
    from zoo import Zoo
    from zoo.datasets import load_dataset
    from zoo.features import evaluate

    zoo = Zoo(run / "zoo")
    test = zoo.indices("test")[:n]
    samples = torch.as_tensor(zoo.column("networks", "sample"))[test]
    labels = torch.as_tensor(zoo.column("networks", "label"))[test]
    data = load_dataset(zoo.manifest["dataset"]["source"])
    cfg = SirenConfig.from_dict(zoo.manifest["architecture"])
    own = [fit_own_inr(data.values[int(s)], seed=1000 + k, steps=steps, lr=lr, cfg=cfg)
           for k, s in enumerate(tqdm(samples, desc="own fits", disable=not progress))]
    rendered = evaluate(cfg, {k: torch.stack([sd[k] for sd in own]) for k in cfg.keys},
                        grid_coords(tuple(data.values.shape[1:]))).float()
    mse = ((rendered - data.values[samples].reshape(len(samples), -1)) ** 2).mean(1)
    zoo_inrs = [zoo.network(int(i)) for i in test]
    results = json.loads((run / "results.json").read_text())
    out = {"n": len(own), "steps": steps, "lr": lr, "psnr_mean": float((10 * torch.log10(4 / mse)).mean()),
           "models": {}}
    for name, m in results["models"].items():
        hits = (classify(Path(m["saved"]["path"]), own + zoo_inrs).argmax(1) == labels.repeat(2)).float()
        out["models"][name] = {
            "reads": m["reads"],
            "own": float(hits[: len(own)].mean()),
            "zoo_same_images": float(hits[len(own):].mean()),
            "zoo_test_acc": m["saved"]["test_acc"],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    from weightspace.io.save import write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="an inr-classify output folder (zoo/, results.json, models/)")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=5e-4)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = measure(args.run, args.n, args.steps, args.lr)
    for name, m in out["models"].items():
        print(f"{name}: own {100 * m['own']:.1f}%  zoo (same images) {100 * m['zoo_same_images']:.1f}%  "
              f"zoo test {100 * m['zoo_test_acc']:.1f}%")
    write_json(args.run / f"own_inrs_{args.steps}x{args.lr:g}.json", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
