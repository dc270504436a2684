"""Each merge method on planted cases whose answer is computed by hand."""
from __future__ import annotations

import math

import pytest
import torch

import weightspace as ws
from weightspace.errors import ConfigError, KeyMismatchError, ShapeMismatchError
from weightspace.merge import greedy_soup
from weightspace.merge.combine import combine
from weightspace.merge.methods import disjoint_mean, drop, stock_ratio, trim
from weightspace.merge.methods import dare_generator


def _sd(w, n=0):
    return {"w": torch.tensor(w, dtype=torch.float64), "num_batches_tracked": torch.tensor(n)}


BASE = _sd([0.0, 0.0, 0.0, 0.0])
# hand-made task vectors (the base is zero, so the models are their task vectors)
T1 = _sd([3.0, -1.0, 0.5, -2.0], n=7)
T2 = _sd([-1.0, -4.0, 0.25, 1.0], n=9)


def test_linear_is_the_weighted_mean_and_integers_come_from_the_anchor():
    out = combine("linear", [T1, T2], weights=[3.0, 1.0])
    assert torch.equal(out["w"], torch.tensor([2.0, -1.75, 0.4375, -1.25], dtype=torch.float64))
    assert int(out["num_batches_tracked"]) == 7
    uniform = combine("linear", [T1, T2])
    assert torch.equal(uniform["w"], (T1["w"] + T2["w"]) / 2)


def test_task_arithmetic_adds_scaled_task_vectors():
    base = _sd([1.0, 1.0, 1.0, 1.0])
    models = [{k: v + base[k] if v.is_floating_point() else v for k, v in t.items()} for t in (T1, T2)]
    out = combine("task_arithmetic", models, base, scale=0.5)
    assert torch.allclose(out["w"], torch.tensor([2.0, -1.5, 1.375, 0.5], dtype=torch.float64))


def test_ties_trims_elects_signs_and_takes_the_disjoint_mean():
    # density 0.5 keeps the two largest magnitudes of each task vector:
    # τ1 -> [3, 0, 0, -2], τ2 -> [0, -4, 0, 1]; elected signs [+, -, 0, -];
    # disjoint means [3, -4, 0, -2] (τ2's +1 disagrees with the elected - at the last entry).
    assert torch.equal(trim(torch.stack([T1["w"], T2["w"]]), 0.5),
                       torch.tensor([[3.0, 0, 0, -2], [0, -4, 0, 1]], dtype=torch.float64))
    out = combine("ties", [T1, T2], BASE, density=0.5)
    assert torch.equal(out["w"], torch.tensor([3.0, -4.0, 0.0, -2.0], dtype=torch.float64))
    # density 1: no trimming; sign of the sums [+2, -5, +0.75, -1]; agreeing entries averaged
    full = combine("ties", [T1, T2], BASE, density=1.0, scale=2.0)
    assert torch.equal(full["w"], 2 * torch.tensor([3.0, -2.5, 0.375, -2.0], dtype=torch.float64))


def test_disjoint_mean_elects_by_summed_magnitude_not_by_count():
    tau = torch.tensor([[1.0], [1.0], [-5.0]])
    assert torch.equal(disjoint_mean(tau), torch.tensor([-5.0]))


def test_dare_drops_with_probability_p_and_rescales():
    tau = torch.ones(2, 20000, dtype=torch.float64)
    dropped = drop(tau, 0.75, seed=3, key="w")
    assert set(dropped.unique().tolist()) == {0.0, 4.0}
    kept = (dropped != 0).double().mean().item()
    assert abs(kept - 0.25) < 0.01 and abs(dropped.mean().item() - 1.0) < 0.04  # unbiased in expectation
    assert not torch.equal(dropped[0], dropped[1])  # each model its own mask
    assert torch.equal(dropped, drop(tau, 0.75, seed=3, key="w"))  # seeded
    assert not torch.equal(dropped, drop(tau, 0.75, seed=4, key="w"))


def test_dare_equals_the_hand_masked_task_vectors():
    p = 0.5
    masks = [torch.rand(4, generator=dare_generator(1, "w", i), dtype=torch.float64) >= p for i in range(2)]
    want_linear = sum(t["w"] * m / (1 - p) for t, m in zip((T1, T2), masks))
    out = combine("dare", [T1, T2], BASE, p=p, seed=1)
    assert torch.equal(out["w"], want_linear)
    want_ties = disjoint_mean(torch.stack([t["w"] * m / (1 - p) for t, m in zip((T1, T2), masks)]))
    assert torch.equal(combine("dare", [T1, T2], BASE, p=p, seed=1, combine="ties")["w"], want_ties)
    # p = 0 keeps everything: DARE-linear is task arithmetic
    assert torch.equal(combine("dare", [T1, T2], BASE, p=0.0)["w"], combine("task_arithmetic", [T1, T2], BASE)["w"])


def test_slerp_of_orthogonal_and_parallel_tensors():
    a, b = {"w": torch.tensor([1.0, 0.0])}, {"w": torch.tensor([0.0, 1.0])}
    mid = combine("slerp", [a, b], t=0.5)["w"]
    assert torch.allclose(mid, torch.tensor([1.0, 1.0]) / math.sqrt(2))  # stays on the unit circle
    third = combine("slerp", [a, b], t=1 / 3)["w"]
    assert torch.allclose(third, torch.tensor([math.cos(math.pi / 6), math.sin(math.pi / 6)]))
    parallel = {"w": torch.tensor([2.0, 0.0])}
    assert torch.equal(combine("slerp", [a, parallel], t=0.25)["w"], torch.tensor([1.25, 0.0]))  # linear fallback
    zero = {"w": torch.zeros(2)}
    assert torch.equal(combine("slerp", [a, zero], t=0.5)["w"], torch.tensor([0.5, 0.0]))
    assert torch.equal(combine("slerp", [a, b], t=0.0)["w"], a["w"])


def test_model_stock_ratio_on_two_models_at_sixty_degrees():
    # τ1 and τ2 of equal norm at 60°: cos θ = 1/2, t = 2·(1/2) / (1 + 1/2) = 2/3
    tau = torch.tensor([[1.0, 0.0], [0.5, math.sqrt(3) / 2]], dtype=torch.float64)
    assert stock_ratio(tau) == pytest.approx(2 / 3)
    base = {"w": torch.tensor([1.0, 1.0], dtype=torch.float64)}
    models = [{"w": base["w"] + t} for t in tau]
    out = combine("model_stock", models, base)["w"]
    assert torch.allclose(out, base["w"] + (2 / 3) * tau.mean(0))
    # identical fine-tunes: t = 1, the merge is the fine-tune; orthogonal ones: t = 0, the base
    assert stock_ratio(torch.stack([tau[0], tau[0]])) == pytest.approx(1.0)
    assert stock_ratio(torch.tensor([[1.0, 0.0], [0.0, 3.0]])) == pytest.approx(0.0)


def test_half_precision_entries_are_computed_in_float32_and_keep_their_dtype():
    a = {"w": torch.tensor([1.0, 2.0], dtype=torch.bfloat16)}
    b = {"w": torch.tensor([3.0, 5.0], dtype=torch.bfloat16)}
    out = combine("linear", [a, b])["w"]
    assert out.dtype == torch.bfloat16 and torch.equal(out, torch.tensor([2.0, 3.5], dtype=torch.bfloat16))


def test_tied_entries_stay_tied_and_inputs_are_untouched():
    w = torch.randn(3, 3)
    a = {"emb": w, "head": w}
    v = torch.randn(3, 3)
    b = {"emb": v, "head": v}
    before = (w.clone(), v.clone())
    out = combine("linear", [a, b])
    assert out["emb"] is out["head"]
    assert torch.equal(w, before[0]) and torch.equal(v, before[1])


def test_greedy_soup_adds_models_only_while_the_score_does_not_drop():
    target = torch.tensor([1.0, 1.0])
    models = [{"w": torch.tensor(x)} for x in ([1.25, 1.0], [0.75, 1.0], [5.0, -3.0], [1.0, 1.5])]
    soup = greedy_soup(models, lambda sd: -float((sd["w"] - target).norm()))
    assert soup.chosen == (0, 1)  # best-first: 0 and 1 tie; adding 1 reaches the target; 3 and 2 hurt
    assert torch.allclose(soup.state_dict["w"], target) and soup.score == pytest.approx(0.0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: combine("nope", [T1]), "unknown merge method"),
        (lambda: combine("ties", [T1, T2]), "needs a base"),
        (lambda: combine("slerp", [T1, T2, T1]), "exactly 2"),
        (lambda: combine("model_stock", [T1], BASE), "at least 2"),
        (lambda: combine("ties", [T1, T2], BASE, density=0.0), "density"),
        (lambda: combine("dare", [T1, T2], BASE, p=1.0), "p must"),
        (lambda: combine("dare", [T1, T2], BASE, combine="mean"), "combine"),
        (lambda: combine("slerp", [T1, T2], t=1.5), "t must"),
        (lambda: combine("linear", [T1, T2], weights=[1.0]), "weights"),
        (lambda: combine("linear", [T1, T2], weights=[1.0, -1.0]), "weights"),
        (lambda: combine("linear", [T1], alpha=0.5), "takes no option"),
    ],
)
def test_bad_method_arguments_raise_config_error(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_models_that_do_not_fit_raise_named_errors():
    with pytest.raises(KeyMismatchError, match="model 1"):
        combine("linear", [T1, {"w": T2["w"]}])
    with pytest.raises(ShapeMismatchError, match="'w'"):
        combine("linear", [T1, _sd([1.0, 2.0])])
    with pytest.raises(KeyMismatchError, match="base"):
        combine("ties", [T1, T2], {"w": BASE["w"]})
    assert isinstance(KeyMismatchError([], []), ws.WeightspaceError)
