"""Declared effects of the augmentations, checked on real models: transforms that say
they preserve the function leave outputs unchanged (SIREN, MLP, CNN, transformer
block); the others change them by the amount their parameters imply."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch.func import functional_call

import weightspace as ws
from weightspace import augment as A
from weightspace import examples

ARCHS = ("siren", "mlp", "cnn", "transformer")


@pytest.fixture(scope="module")
def parsed():
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ARCHS:
            model, inputs = examples.build(name)
            out[name] = (model.eval(), inputs, ws.parse(model, inputs))
    return out


def _stack(spec, model, n: int, seed: int) -> dict[str, torch.Tensor]:
    """n networks of the model's architecture: its weights plus small per-sample noise."""
    gen = torch.Generator().manual_seed(seed)
    sd = {k: v for k, v in model.state_dict().items() if k in spec.entries}
    return {k: torch.stack([v + (0.05 * v.abs().mean() * torch.randn(v.shape, generator=gen) if v.is_floating_point()
                                 and not spec.entries[k].buffer else v) for _ in range(n)]) for k, v in sd.items()}


def _outputs(model, batch, inputs) -> list[torch.Tensor]:
    n = next(iter(batch.values())).shape[0]
    with torch.no_grad():
        return [functional_call(model, {k: v[i] for k, v in batch.items()}, inputs) for i in range(n)]


def _rel(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max() / y.abs().max()) for x, y in zip(a, b))


def _symmetric(spec, name):
    transforms = [A.RandomSymmetry(spec), A.RandomSymmetry(spec, permutations=False, signs=False, scales=True)]
    if name == "siren":
        transforms.append(A.SirenBiasShift(spec, omega0=30.0, max_multiple=2))
    return transforms


@pytest.mark.parametrize("name", ARCHS)
def test_symmetry_preserving_transforms_keep_outputs(parsed, name):
    model, inputs, spec = parsed[name]
    batch = _stack(spec, model, 3, seed=1)
    ref = _outputs(model, batch, inputs)
    transforms = _symmetric(spec, name)
    transforms.append(A.Compose(list(transforms)))
    for i, t in enumerate(transforms):
        assert t.preserves_function
        out = t(batch, torch.Generator().manual_seed(i))
        assert set(out) == set(batch)
        assert _rel(_outputs(model, out, inputs), ref) < 1e-4, f"{name}: {t!r}"
        changed = max(float((out[k] - batch[k]).abs().max()) for k in batch)
        if isinstance(t, A.Compose) or (isinstance(t, A.RandomSymmetry) and t.permutations):
            assert changed > 1e-3, f"{name}: {type(t).__name__} did not move the weights"


def test_single_sample_and_batch_agree_in_kind(parsed):
    model, inputs, spec = parsed["siren"]
    sd = {k: v for k, v in model.state_dict().items()}
    out = A.RandomSymmetry(spec)(sd, torch.Generator().manual_seed(0))
    assert {k: v.shape for k, v in out.items()} == {k: v.shape for k, v in sd.items()}
    with torch.no_grad():
        torch.testing.assert_close(functional_call(model, out, inputs), model(*inputs), rtol=1e-4, atol=1e-5)


def test_each_sample_draws_its_own_element(parsed):
    model, _, spec = parsed["mlp"]
    batch = {k: torch.stack([v] * 4) for k, v in model.state_dict().items()}
    out = A.RandomSymmetry(spec, signs=False)(batch, torch.Generator().manual_seed(0))
    w = out["0.weight"]
    assert len({tuple(w[i, :, 0].tolist()) for i in range(4)}) == 4


def test_siren_bias_shift_is_wrong_for_tanh():
    """The shift is a sine identity: the same move on a tanh network changes its function
    (which is why it is a separate transform with an explicit ω0)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x = torch.randn(16, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = ws.parse(model, (x,))
    out = A.SirenBiasShift(spec, omega0=1.0)(model.state_dict(), torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert float((functional_call(model, out, (x,)) - model(x)).abs().max()) > 1e-2


@pytest.mark.parametrize("name", ARCHS)
def test_noise_changes_weights_and_outputs_in_proportion(parsed, name):
    model, inputs, spec = parsed[name]
    batch = _stack(spec, model, 2, seed=2)
    ref = _outputs(model, batch, inputs)
    changes = []
    for std in (1e-3, 2e-3):
        t = A.GaussianNoise(spec, std=std)
        assert not t.preserves_function
        out = t(batch, torch.Generator().manual_seed(0))  # same draw, scaled
        for k, v in batch.items():
            if spec.entries[k].buffer or v.numel() < 200 * 2:
                continue
            rel = float((out[k] - v).pow(2).mean().sqrt() / v.pow(2).mean().sqrt())
            assert abs(rel / std - 1) < 0.25, f"{k}: relative change {rel:.2e} for std {std}"
        changes.append(_rel(_outputs(model, out, inputs), ref))
    assert changes[0] > 1e-5
    assert 1.6 < changes[1] / changes[0] < 2.4, changes


def test_weight_dropout_rate_and_buffers(parsed):
    model, inputs, spec = parsed["cnn"]
    batch = _stack(spec, model, 4, seed=3)
    out = A.WeightDropout(spec, p=0.2)(batch, torch.Generator().manual_seed(0))
    zeros = total = 0
    for k, v in batch.items():
        if spec.entries[k].buffer or v.dim() - 1 < 2:
            assert torch.equal(out[k], v), k
            continue
        zeros += int(((out[k] == 0) & (v != 0)).sum())
        total += v.numel()
        kept = out[k] != 0
        assert torch.equal(out[k][kept], v[kept])
    rate = zeros / total
    sigma = (0.2 * 0.8 / total) ** 0.5
    assert abs(rate - 0.2) < 5 * sigma, rate
    assert _rel(_outputs(model, out, inputs), _outputs(model, batch, inputs)) > 1e-3


def test_magnitude_pruning_removes_the_smallest(parsed):
    model, _, spec = parsed["mlp"]
    batch = _stack(spec, model, 3, seed=4)
    out = A.MagnitudePruning(spec, fraction=(0.25, 0.25))(batch, torch.Generator().manual_seed(0))
    for k, v in batch.items():
        if v.dim() - 1 < 2:
            assert torch.equal(out[k], v)
            continue
        for i in range(3):
            flat, pruned = v[i].reshape(-1), out[k][i].reshape(-1)
            gone = pruned == 0
            assert int(gone.sum()) == int(0.25 * flat.numel())
            assert float(flat[gone].abs().max()) <= float(flat[~gone].abs().min())


def test_random_apply_mixes_per_sample(parsed):
    model, _, spec = parsed["mlp"]
    batch = _stack(spec, model, 64, seed=5)
    out = A.RandomApply(spec, A.GaussianNoise(spec, std=0.1), p=0.5)(batch, torch.Generator().manual_seed(0))
    touched = (out["0.weight"] != batch["0.weight"]).flatten(1).any(1)
    assert 16 < int(touched.sum()) < 48


@pytest.mark.parametrize("name", ("siren", "cnn"))
def test_transforms_take_a_weight_space_batch_and_give_one_back(parsed, name):
    """A one-channel `WeightSpaceBatch` goes through the same transform as its (B, *shape)
    dict with the same draws; several channels are a named error."""
    from weightspace.errors import ShapeMismatchError
    from weightspace.nn import WeightSpaceBatch, metanet_spec

    model, _, spec = parsed[name]
    stacked = _stack(spec, model, 3, seed=7)
    params = metanet_spec(spec)
    batch = WeightSpaceBatch.from_stacked(params, stacked)
    plain = {k: stacked[k] for k in params.entries}
    t = A.Compose([A.RandomSymmetry(spec), A.GaussianNoise(spec, std=0.01)])
    out = t(batch, torch.Generator().manual_seed(0))
    ref = t(plain, torch.Generator().manual_seed(0))
    assert isinstance(out, WeightSpaceBatch) and set(out.tensors) == set(ref)
    assert all(torch.equal(out.tensors[k][:, 0], ref[k]) for k in ref)
    mixed, soft = A.Mixup(spec, num_classes=4)(batch, torch.tensor([0, 1, 2]), torch.Generator().manual_seed(1))
    ref_mixed, ref_soft = A.Mixup(spec, num_classes=4)(plain, torch.tensor([0, 1, 2]), torch.Generator().manual_seed(1))
    assert isinstance(mixed, WeightSpaceBatch) and torch.equal(soft, ref_soft)
    assert all(torch.equal(mixed.tensors[k][:, 0], ref_mixed[k]) for k in plain)
    two = batch.map(lambda x: torch.cat([x, x], dim=1))
    with pytest.raises(ShapeMismatchError, match="one channel"):
        A.RandomSymmetry(spec)(two)
