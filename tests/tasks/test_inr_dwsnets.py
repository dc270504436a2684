"""The DWSNets MNIST-INR benchmark path end to end: a fake DWSNets layout on disk
(folders of `.pth` state dicts keyed `seq.0.weight` …, a splits JSON naming another
machine) -> `weightspace zoo import dwsnets` -> `weightspace run inr-classify --zoo`.
The imported networks render the images DWSNets renders from the original modules."""
from __future__ import annotations

import argparse
import json

import pytest
import torch

from tasks.inr_classify.data import InrSplits
from tasks.inr_classify.models import CHOICES, DEFAULT
from tests.tasks.test_inr_classify import _run
from tests.zoo.test_importers import DwsInr, dws_coords, dws_image, write_dwsnets
from zoo import Zoo, cli

SIZE = (28, 28)
CLASSES = 3
PER_CLASS = 20


def _templates() -> torch.Tensor:
    """(3, 28, 28) class images in [0, 1]: a vertical bar, a horizontal bar, a ring."""
    r, c = torch.meshgrid(torch.linspace(-1, 1, SIZE[0]), torch.linspace(-1, 1, SIZE[1]), indexing="ij")
    return torch.stack([(c.abs() < 0.25).float(), (r.abs() < 0.25).float(),
                        ((r**2 + c**2).sqrt() - 0.6).abs().lt(0.15).float()])


def _fit(images: torch.Tensor, steps: int = 15, lr: float = 1e-2) -> list[DwsInr]:
    """One DWSNets INR per image, fitted together (vmap over stacked modules) for a few
    Adam steps in DWSNets' own convention."""
    torch.manual_seed(0)
    models = [DwsInr(hidden=16) for _ in images]
    params, _ = torch.func.stack_module_state(models)
    coords = dws_coords(SIZE)

    def render(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.func.functional_call(models[0], p, (coords,)).view(SIZE)

    opt = torch.optim.Adam(params.values(), lr=lr)
    for _ in range(steps):
        loss = (torch.vmap(render)(params) - images).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        for i, m in enumerate(models):
            for k, p in m.named_parameters():
                p.copy_(params[k][i])
    return models


@pytest.fixture(scope="module")
def dwsnets_zoo(tmp_path_factory):
    """60 fitted INRs (3 classes) in the DWSNets layout, imported through the CLI."""
    tmp = tmp_path_factory.mktemp("dwsnets")
    labels = [i % CLASSES for i in range(CLASSES * PER_CLASS)]
    noise = 0.1 * torch.randn(len(labels), *SIZE, generator=torch.Generator().manual_seed(0))
    models = _fit(_templates()[labels] + noise)
    splits = ["train" if i // CLASSES < 12 else ("val" if i // CLASSES < 16 else "test") for i in range(len(labels))]
    nets = list(zip(models, labels, splits))
    write_dwsnets(tmp / "mnist-inrs", tmp / "mnist_splits.json", nets)
    parser = argparse.ArgumentParser(prog="weightspace")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["zoo", "import", "dwsnets", str(tmp / "mnist-inrs"), str(tmp / "mnist_splits.json"),
                              "--out", str(tmp / "zoo"), "--chunk", "25"])
    assert args.run(args) == 0
    return tmp / "zoo", nets


def test_import_preserves_every_rendered_image(dwsnets_zoo):
    root, nets = dwsnets_zoo
    zoo = Zoo(root)
    assert zoo.manifest["build"]["command"][:4] == ["weightspace", "zoo", "import", "dwsnets"]
    data = InrSplits.load(root)
    assert data.grid == SIZE and data.num_classes == CLASSES and data.dataset == "dwsnets-mnist"
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 36, "val": 12, "test": 12}
    order = [j for split in ("train", "val", "test") for j in zoo.indices(split).tolist()]
    rendered = torch.cat([data.renders[s].weights["pixels"] for s in ("train", "val", "test")])
    for row, j in enumerate(order):
        torch.testing.assert_close(rendered[row].view(SIZE), dws_image(nets[j][0], SIZE), rtol=0, atol=1e-5)
    one = data.context().render({k: v[None] for k, v in zoo.network(0).items()})
    torch.testing.assert_close(one.view(SIZE), dws_image(nets[0][0], SIZE), rtol=0, atol=1e-5)
    labels = torch.cat([data.renders[s].targets for s in ("train", "val", "test")])
    nearest = (rendered[:, None] - _templates().flatten(1)[None]).pow(2).mean(2).argmin(1)
    assert (nearest == labels).float().mean() >= 0.9  # upright: a transposed render swaps the two bar classes


@pytest.mark.parametrize("name", DEFAULT)
def test_default_models_build_and_run(dwsnets_zoo, name):
    """Every default model of the comparison builds on the imported zoo and classifies a batch."""
    data = InrSplits.load(dwsnets_zoo[0])
    choice = CHOICES[name]
    split = (data.renders if choice.reads == "pixels" else data.splits)["train"]
    batch = {k: v[:4] for k, v in split.weights.items()}
    torch.manual_seed(0)
    out = choice.build(data)(choice.prepare(data)(batch))
    assert out.shape == (4, CLASSES) and torch.isfinite(out).all()


def test_run_inr_classify_on_imported_zoo(dwsnets_zoo, tmp_path):
    out = tmp_path / "run"
    assert _run(["run", "inr-classify", "--zoo", str(dwsnets_zoo[0]), "--models", "stats", "recon_mlp", "gmn_probe",
                 "--seeds", "0", "--epochs", "3", "--workers", "1", "--quiet", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "dwsnets-mnist" and results["num_classes"] == CLASSES
    assert set(results["models"]) == {"stats", "recon_mlp", "gmn_probe"}
    for m in results["models"].values():
        assert m["seeds"] == [0] and 0.0 <= m["test_acc_mean"] <= 1.0 and m["params"] > 0
    assert all((out / "models" / f"{name}.safetensors").is_file() for name in results["models"])
