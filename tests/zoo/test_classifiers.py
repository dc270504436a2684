"""Classifier zoos: batched training equals one-at-a-time, stored nets reproduce recorded metrics."""
from __future__ import annotations

import torch

from zoo import Zoo
from zoo.classifier_nets import ClassifierConfig, forward
from zoo.classifier_trainer import Split, evaluate, train
from zoo.classifier_zoo import ClassifierRecipe, build_classifier_zoo, sample_hyper
from zoo.datasets import digits


def _data(n_train: int = 96, n_test: int = 64):
    d = digits()
    x = d.values.unsqueeze(1)
    tr, te = d.indices("train")[:n_train], d.indices("test")[:n_test]
    return Split(x[tr], d.labels[tr]), Split(x[te], d.labels[te])


def test_batched_equals_one_at_a_time():
    train_set, test_set = _data()
    cfg = ClassifierConfig("cnn", (1, 8, 8), 8, 10)
    hyper = sample_hyper(ClassifierRecipe(max_width=8, max_epochs=3), range(3))
    assert len(set(hyper.width.tolist())) > 1 or len(set(hyper.epochs.tolist())) > 1
    seeds = [11, 12, 13]
    _, batched, metrics = train(cfg, hyper, seeds, train_set, {"test": test_set}, (1, 3), batch=32)
    for i in range(3):
        _, alone, m = train(cfg, hyper.take(slice(i, i + 1)), seeds[i : i + 1], train_set, {"test": test_set}, (1, 3), batch=32)
        for k in cfg.keys:
            torch.testing.assert_close(batched[k][i : i + 1], alone[k], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(metrics["test_acc@ckpt"][i], m["test_acc@ckpt"][0])


def test_masked_units_are_dead_and_module_matches():
    train_set, test_set = _data()
    cfg = ClassifierConfig("mlp", (1, 8, 8), 12, 10)
    hyper = sample_hyper(ClassifierRecipe(arch="mlp", max_width=12, max_epochs=2), range(4))
    _, w, metrics = train(cfg, hyper, [1, 2, 3, 4], train_set, {"test": test_set}, (2,))
    module = cfg.module()
    for i in range(4):
        width = int(hyper.width[i])
        assert torch.all(w["1.weight"][i, width:] == 0) and torch.all(w["3.weight"][i, :, width:] == 0)
        module.load_state_dict({k: v[i] for k, v in w.items()})
        with torch.no_grad():
            logits = module(test_set.x)
        torch.testing.assert_close(logits, forward(cfg, w, test_set.x)[i], rtol=1e-4, atol=1e-5)
        acc = (logits.argmax(-1) == test_set.y).float().mean()
        torch.testing.assert_close(acc, metrics["test_acc"][i])


def test_zoo_records_metrics_and_spec_symmetry(tmp_path):
    recipe = ClassifierRecipe(max_width=8, max_epochs=2, seed=3)
    m = build_classifier_zoo(tmp_path, "digits", recipe, count=6, chunk=4, progress=False)
    zoo = Zoo(tmp_path)
    assert m["checkpoint_epochs"] == [1, 2]
    assert len(zoo.column("metrics", "test_acc@ckpt")[0]) == 2
    w = zoo.stacked()
    cfg = ClassifierConfig.from_dict(m["architecture"])
    _, test = _data(1, 297)
    acc, _ = evaluate(cfg, w, test)
    torch.testing.assert_close(acc, torch.tensor(zoo.column("metrics", "test_acc")))
    assert float(acc.max()) > 0.2, "some network must beat chance"
    g = zoo.spec.random_element(torch.Generator().manual_seed(0), batch_shape=(6,))
    moved = zoo.spec.apply(w, g, batch_dims=1)
    torch.testing.assert_close(forward(cfg, moved, test.x), forward(cfg, w, test.x), rtol=1e-4, atol=1e-4)
    wrong = dict(w)
    wrong["2.weight"] = w["2.weight"].flip(1)
    assert not torch.allclose(forward(cfg, wrong, test.x), forward(cfg, w, test.x), atol=1e-3)


def test_diagnose_predicts_accuracy_of_a_classifier_zoo(tmp_path):
    from zoo.diagnose import diagnose

    build_classifier_zoo(tmp_path, "digits", ClassifierRecipe(arch="mlp", max_width=8, max_epochs=3), count=40, chunk=40, progress=False)
    d = diagnose(tmp_path)
    assert set(d.scores) == {f"{f}: {s}" for f in ("flattened weights", "statistics") for s in ("R²", "Kendall τ")}
    assert -1 <= d.scores["statistics: Kendall τ"] <= 1
    assert d.movement["3.weight"] > 0
