"""`zoo diagnose`: what can a zoo teach, before any metanetwork is trained on it?

Reports how far each layer moved from its init (median relative Frobenius change),
and test accuracies of quick scikit-learn baselines trained on the train split:
flattened weights, per-tensor statistics, and for INR zoos probe values (the INR at
64 fixed coordinates), reconstructions (the INR on its grid) and the original
signals. Issue 4 measured the patterns that separate a clean symmetry benchmark
(statistics/probes high, flattened weights low) from a leak (flattened weights high)
and from an init-noise zoo (everything but probes at chance).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from . import features
from .dataset import Zoo
from .datasets import load_dataset
from weightspace.errors import ZooError
from .siren import SirenConfig
from .storage import INIT_PREFIX


@dataclass(frozen=True)
class Diagnosis:
    """Per-layer movement from init and baseline test scores (accuracy, or R² for metrics)."""

    zoo: str
    recipe: str
    networks: int
    movement: dict[str, float]
    scores: dict[str, float]
    score_name: str = "test accuracy"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def movement(zoo: Zoo) -> dict[str, float]:
    """Median over networks of ||W - W0|| / ||W0|| per stored tensor (needs stored inits)."""
    w, w0 = zoo.stacked(), zoo.stacked(INIT_PREFIX)
    out = {}
    for k in zoo.keys:
        d = (w[k] - w0[k]).reshape(len(zoo), -1).norm(dim=1)
        base = w0[k].reshape(len(zoo), -1).norm(dim=1).clamp_min(1e-12)
        out[k] = float((d / base).median())
    return out


def _classifier(kind: str, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logreg":
        model = LogisticRegression(max_iter=2000, C=1.0)
    elif kind == "mlp":
        model = MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-3, max_iter=400, early_stopping=True, random_state=seed)
    else:
        raise ZooError(f"unknown baseline classifier {kind!r}; expected 'mlp' or 'logreg'")
    return make_pipeline(StandardScaler(), model)


def score(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, kind: str = "mlp", seed: int = 0) -> float:
    """Test accuracy of a standardized scikit-learn classifier trained on `train` rows."""
    if len(train) == 0 or len(test) == 0:
        raise ZooError("a baseline needs networks in both the train and the test split")
    model = _classifier(kind, seed).fit(x[train], y[train])
    return float(model.score(x[test], y[test]))


def inr_inputs(zoo: Zoo, weights: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Probe values, reconstructions and the original signals of an INR zoo's networks."""
    cfg = SirenConfig.from_dict(zoo.manifest["architecture"])
    src = zoo.manifest["dataset"]
    data = load_dataset(src["source"], zoo.manifest["recipe"].get("upsample"))
    samples = torch.as_tensor(zoo.column("networks", "sample"))
    return {
        "probes": features.evaluate(cfg, weights, features.probe_coords(cfg.widths[0])).numpy(),
        "reconstructions": features.evaluate(cfg, weights, data.coords()).numpy(),
        "originals": data.values[samples].reshape(len(samples), -1).numpy(),
    }


def regression_scores(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[float, float]:
    """(R², Kendall τ) on `test` of a standardized ridge regression (alpha by CV) fit on `train`."""
    from scipy.stats import kendalltau
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(train) < 3 or len(test) < 2:
        raise ZooError("predicting a metric needs at least 3 train and 2 test networks")
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))).fit(x[train], y[train])
    pred = model.predict(x[test])
    return float(r2_score(y[test], pred)), float(kendalltau(y[test], pred).statistic)


def diagnose(root, classifier: str = "mlp", split: str = "test", with_inputs: bool = True, metric: str = "test_acc") -> Diagnosis:
    """Diagnose a zoo: movement from init and baselines.

    Zoos with labels (INR zoos, labelled imports) get classification accuracies;
    zoos without (classifier zoos) get R² and Kendall τ of predicting `metric`.
    """
    zoo = Zoo(root)
    weights = zoo.stacked()
    train, test = zoo.indices("train"), zoo.indices(split)
    inputs = {
        "flattened weights": features.flattened(weights, zoo.keys).numpy(),
        "statistics": features.statistics(weights, zoo.keys).numpy(),
    }
    if "label" in zoo.manifest.get("networks", {}):
        if zoo.kind == "inr" and with_inputs:
            inputs.update(inr_inputs(zoo, weights))
        y = np.asarray(zoo.column("networks", "label"))
        scores = {name: score(x, y, train, test, classifier) for name, x in inputs.items()}
        score_name = f"{split} accuracy ({classifier})"
    else:
        y = np.asarray(zoo.column("metrics", metric), dtype=float)
        scores = {}
        for name, x in inputs.items():
            scores[f"{name}: R²"], scores[f"{name}: Kendall τ"] = regression_scores(x, y, train, test)
        score_name = f"predicting {metric} on the {split} networks (ridge regression)"
    notes = []
    try:
        moved = movement(zoo)
    except ZooError as err:
        moved, notes = {}, [str(err)]
    return Diagnosis(str(root), zoo.manifest.get("recipe_name", zoo.kind), len(zoo), moved, scores, score_name, notes)


def render(d: Diagnosis, console) -> None:
    from rich.table import Table

    from weightspace.cli.text import safe_text

    console.print(f"[bold]{safe_text(d.zoo)}[/bold]: {d.networks} networks, recipe {safe_text(d.recipe)}")
    if d.movement:
        t = Table(title="relative movement from init (median over networks)")
        t.add_column("tensor")
        t.add_column("||W-W0||/||W0||", justify="right")
        for k, v in d.movement.items():
            t.add_row(safe_text(k), f"{v:.3f}")
        console.print(t)
    t = Table(title=f"baselines: {d.score_name}")
    t.add_column("input")
    t.add_column("score", justify="right")
    for k, v in d.scores.items():
        t.add_row(safe_text(k), f"{v:.3f}")
    console.print(t)
    for n in d.notes:
        console.print(f"note: {safe_text(n)}")
