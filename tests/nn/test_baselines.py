"""Baselines: what they are invariant to, and that augmentation stays inside the spec's group."""
import pytest
import torch

from weightspace.examples import build
from weightspace.augment import RandomSymmetry
from weightspace.nn import FlatMLP, StatMLP, WeightSpaceBatch
from weightspace.nn.baselines import StatFeatures
from weightspace.testing import assert_invariant, random_weights

from .specs import PARSED, parsed

BATCH = dict(batch_dims=2, batch_shape=(3, 1))


@pytest.mark.parametrize("arch", PARSED)
def test_flat_mlp_is_not_invariant(arch):
    spec = parsed(arch)
    model = FlatMLP(spec, 3, (16,)).double()
    with pytest.raises(AssertionError, match="not invariant"):
        assert_invariant(model, spec, **BATCH)


@pytest.mark.parametrize("arch", PARSED)
def test_stat_mlp_is_invariant(arch):
    spec = parsed(arch)
    model = StatMLP(spec, 3, (16,)).double().eval()
    with torch.no_grad():
        model.norm.running_mean.normal_()
    assert_invariant(model, spec, **BATCH)


def test_stat_features_values():
    spec = parsed("siren")
    x = {k: torch.randn(2, 1, *e.shape, dtype=torch.float64) for k, e in spec.entries.items()}
    feats = StatFeatures(spec)(x).reshape(2, len(spec.entries), 7)
    w = x["2.weight"][1].flatten()
    i = list(spec.entries).index("2.weight")
    expected = torch.stack([w.mean(), w.var(unbiased=False), w.min(), torch.quantile(w, 0.25), torch.quantile(w, 0.5), torch.quantile(w, 0.75), w.max()])
    assert torch.allclose(feats[1, i], expected)


def test_augmentation_keeps_the_function_and_changes_the_weights():
    """The "MLP + augmentation" baseline's augmentation: `RandomSymmetry` on a `WeightSpaceBatch`."""
    model, (inputs,) = build("siren")
    spec = parsed("siren")
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    batch = WeightSpaceBatch.from_state_dicts(spec, [sd, sd])
    out = RandomSymmetry(spec, signs=True)(batch, torch.Generator().manual_seed(0))
    assert isinstance(out, WeightSpaceBatch) and out.channels == 1
    moved = out.to_state_dicts()
    reference = model(inputs)
    for new in moved:
        assert not torch.equal(new["2.weight"], sd["2.weight"])
        model.load_state_dict(new)
        assert torch.allclose(model(inputs), reference, atol=1e-5)
    assert not torch.equal(moved[0]["2.weight"], moved[1]["2.weight"])  # one element per sample


def test_augmented_batches_change_a_flat_mlp_output():
    spec = parsed("mlp")
    torch.manual_seed(0)
    model = FlatMLP(spec, 3, (16,)).eval()
    batch = WeightSpaceBatch.from_stacked(spec, random_weights(spec, torch.Generator().manual_seed(0), (4,)))
    moved = RandomSymmetry(spec)(batch, torch.Generator().manual_seed(1))
    assert torch.equal(model(batch), model(batch))
    assert not torch.allclose(model(moved), model(batch))
