"""The generate-checkpoints job's pieces on planted answers, and the job end to end on a tiny zoo."""
from __future__ import annotations

import pytest
import torch

from tasks.generate_checkpoints import memorization as mem
from tasks.generate_checkpoints.adam_budget import adam_curves, steps_to_reach, tuned_budget
from tasks.generate_checkpoints.data import ZooSettings, data_splits, ensure_zoo, load_runs
from tasks.generate_checkpoints.evaluate import loss_and_error, prompt_grid, prompting

TINY = ZooSettings(count=12, width=8, epochs=2, every=7, chunk=6)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return load_runs(ensure_zoo(tmp_path_factory.mktemp("gen") / "zoo", TINY))


@pytest.fixture(scope="module")
def bank(runs):
    weights, _ = runs.flat(runs.train)
    reference = {k: v[runs.train[0], -1].unsqueeze(0) for k, v in runs.weights.items()}
    return mem.Bank.build(runs.spec, weights, reference)


def test_runs_are_split_by_run_and_stacked_per_checkpoint(runs):
    assert set(runs.train.tolist()).isdisjoint(runs.heldout.tolist())
    assert sorted(runs.train.tolist() + runs.heldout.tolist()) == list(range(TINY.count))
    c = len(runs.steps)
    assert runs.steps.tolist() == [0, 7, 14, 21, 28, 35, 38]
    for k in runs.cfg.keys:
        assert runs.weights[k].shape[:2] == (TINY.count, c)
    assert runs.metrics["test_loss"].shape == (TINY.count, c)
    loss, err = loss_and_error(runs.cfg, {k: v[:, 3] for k, v in runs.weights.items()}, data_splits("digits")["test"])
    torch.testing.assert_close(loss, runs.metrics["test_loss"][:, 3])
    torch.testing.assert_close(err, runs.metrics["test_err"][:, 3])


def test_a_permuted_training_checkpoint_is_at_aligned_distance_zero(runs, bank):
    gen = torch.Generator().manual_seed(0)
    pick = torch.tensor([1, 5, 8, 12])  # trained and initial checkpoints of several runs
    planted = {k: v[pick] for k, v in bank.points.items()}
    moved = runs.spec.apply(planted, runs.spec.random_element(gen, batch_shape=(len(pick),)), batch_dims=1)
    found = mem.nearest_checkpoint(runs.spec, moved, bank, refine=2)
    assert found.aligned.max() < 1e-4
    assert found.unaligned.min() > 0.1, "negative control: unaligned, the permuted copies are far"
    torch.testing.assert_close(mem.flatten({k: v[found.index] for k, v in bank.points.items()}, bank.keys),
                               mem.flatten(planted, bank.keys))


def test_aligned_distance_is_at_most_unaligned_and_sorting_is_orbit_invariant(runs, bank):
    held, _ = runs.flat(runs.heldout)
    found = mem.nearest_checkpoint(runs.spec, held, bank)
    assert bool((found.aligned <= found.unaligned + 1e-6).all())
    gen = torch.Generator().manual_seed(1)
    moved = runs.spec.apply(held, runs.spec.random_element(gen, batch_shape=(len(found.index),)), batch_dims=1)
    a = runs.spec.apply(held, mem.sorting_element(runs.spec, held), batch_dims=1)
    b = runs.spec.apply(moved, mem.sorting_element(runs.spec, moved), batch_dims=1)
    torch.testing.assert_close(mem.flatten(a, bank.keys), mem.flatten(b, bank.keys))


def test_baselines_on_known_answers(bank):
    metric = torch.arange(len(bank.points[bank.keys[0]]), dtype=torch.float32)
    prompts = torch.tensor([3.2, 10.9])
    radius = torch.tensor([0.5, 2.0])
    noisy = mem.noisy_nearest(bank, metric, prompts, radius, count=2, generator=torch.Generator().manual_seed(0))
    source = mem.flatten({k: v[torch.tensor([3, 4, 11, 10])] for k, v in bank.points.items()}, bank.keys)
    dist = (mem.flatten(noisy, bank.keys) - source).norm(dim=1)
    torch.testing.assert_close(dist, torch.tensor([0.5, 0.5, 2.0, 2.0]))
    one = mem.averaged(bank, metric, prompts, k=1)
    torch.testing.assert_close(mem.flatten(one, bank.keys), mem.flatten({k: v[torch.tensor([3, 11])] for k, v in bank.aligned.items()}, bank.keys))
    two = mem.averaged(bank, metric, prompts[:1], k=2)
    pair = mem.flatten({k: v[torch.tensor([3, 4])] for k, v in bank.aligned.items()}, bank.keys)
    torch.testing.assert_close(mem.flatten(two, bank.keys)[0], pair.mean(0))


def test_prompting_scores():
    prompts = torch.tensor([0.5, 1.0, 2.0])
    exact = prompts.unsqueeze(1).repeat(1, 4)
    score = prompting(prompts, exact, torch.zeros(3, 4))
    assert score["mae"] == 0 and score["pearson"] == pytest.approx(1) and score["spearman"] == pytest.approx(1)
    flat = prompting(prompts, torch.ones(3, 4), torch.zeros(3, 4))
    assert flat["pearson"] == 0 and flat["mae"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert [p["prompt"] for p in score["per_prompt"]] == prompts.tolist()
    q = prompt_grid(torch.tensor([[9.0, 1.0, 2.0, 3.0]]), [0.0, 0.5, 1.0])
    torch.testing.assert_close(q, torch.tensor([1.0, 2.0, 3.0]))


def test_steps_to_reach_and_the_tuned_learning_rate():
    steps = torch.tensor([0, 5, 10])
    loss = torch.tensor([[3.0, 2.0, 1.0], [3.0, 3.0, 3.0]])
    reached = steps_to_reach(steps, loss, torch.tensor([1.5, 2.0]))
    assert reached[0] == 10 and reached[1] == float("inf")
    assert steps_to_reach(steps, loss[:1], torch.tensor([5.0]))[0] == 0


def test_adam_from_held_out_inits_lowers_the_loss_and_lr_zero_does_not(runs):
    sets = data_splits("digits")
    init = {k: v[runs.heldout, 0] for k, v in runs.weights.items()}
    curves = adam_curves(runs.cfg, init, sets["train"], sets["test"], [0.0, 1e-2], max_steps=30, every=10)
    assert curves.steps.tolist() == [0, 10, 20, 30] and curves.loss.shape == (2, len(runs.heldout), 4)
    torch.testing.assert_close(curves.loss[0, :, -1], curves.loss[0, :, 0])
    assert bool((curves.loss[1, :, -1] < curves.loss[1, :, 0]).all())
    torch.testing.assert_close(curves.loss[1, :, 0], runs.metrics["test_loss"][runs.heldout, 0])
    target = curves.loss[1, :, 2].unsqueeze(0)
    budget = tuned_budget(curves, target)
    assert budget["lr"] == 1e-2 and bool((budget["steps"] <= 20).all()) and budget["cap"] == 30


def test_the_job_end_to_end_on_a_tiny_zoo(runs, tmp_path, capsys):
    """Both denoisers train (the diffusion loss on fixed training pairs goes down), every field is
    written and finite, the plots exist, and a saved generator's checkpoint loads into the model and runs."""
    import json
    import math

    from tasks.jobs import run_job
    from weightspace.generate import generate, load_generator

    argv = ["--zoo", str(runs.root), "--steps", "60", "--batch", "16", "--lr", "3e-3", "--hidden", "8", "--layers", "2",
            "--inits", "3", "--quantiles", "0.1", "0.5", "--sample-steps", "3", "--adam-steps", "20",
            "--adam-every", "10", "--out", str(tmp_path), "--quiet"]
    assert run_job("generate-checkpoints", argv) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["config"]["budget"] == {"steps": 60, "batch": 16, "lr": 3e-3, "seed": 0}
    assert result["zoo"]["train_runs"] + result["zoo"]["heldout_runs"] == TINY.count and not result["zoo"]["built_now"]
    for name in ("transformer", "equivariant"):
        loss = result["training"]["denoisers"][name]["diffusion_loss"]
        assert loss["fixed_train_after"] < loss["fixed_train_before"]
        assert len(loss["history"]) == 60
    ev = result["evaluation"]
    assert ev["heldout_inits"] == 3 and len(ev["prompts"]) == 2
    records = [*ev["generators"].values(), *ev["baselines"].values(), ev["heldout_real"]]
    assert set(ev["baselines"]) == {"nearest_noise_transformer", "nearest_noise_equivariant", "average"}
    for rec in records:
        pr, m = rec["prompting"], rec["memorization"]
        assert all(math.isfinite(pr[k]) for k in ("pearson", "spearman", "mae", "loss_mean", "error_mean"))
        assert len(pr["per_prompt"]) == 2 and pr["finite_fraction"] == 1
        assert 0 <= m["aligned_mean"] <= m["unaligned_mean"] + 1e-6
    for rec in ev["generators"].values():
        assert {"lr", "median", "reached", "median_per_lr"} <= set(rec["adam"]) and "reached" in rec["zoo_recipe"]
        assert rec["sample_cost"]["cpu_seconds"] >= 0
    assert ev["alignment"]["bank_checkpoints"] == len(runs.train) * len(runs.steps)
    assert result["total"]["cpu_seconds"] > 0
    assert (tmp_path / "achieved_vs_prompted.png").stat().st_size > 0 and (tmp_path / "diffusion_loss.png").exists()
    assert "held-out real" in capsys.readouterr().out

    model = load_generator(tmp_path / "equivariant.safetensors")
    init = {k: v[runs.heldout[0], 0] for k, v in runs.weights.items()}
    made = generate(model, init, target_metric=ev["prompts"][0], steps=3)
    net = runs.cfg.module()
    net.load_state_dict(made)
    logits = net(data_splits("digits")["test"].x[:5])
    assert logits.shape == (5, 10) and bool(torch.isfinite(logits).all())
