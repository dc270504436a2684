import pytest
import torch

from weightspace.errors import KeyMismatchError, ShapeMismatchError
from weightspace.nn import WeightSpaceBatch, metanet_spec
from weightspace.testing import random_cnn_spec, random_mlp_spec, random_weights


def test_round_trip_state_dicts():
    spec = random_mlp_spec([3, 4, 2])
    gen = torch.Generator().manual_seed(0)
    sds = [random_weights(spec, gen) for _ in range(5)]
    batch = WeightSpaceBatch.from_state_dicts(spec, sds)
    assert batch.batch_size == 5 and batch.channels == 1
    assert batch.tensors["layers.0.weight"].shape == (5, 1, 4, 3)
    back = batch.to_state_dicts()
    for a, b in zip(sds, back):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k])


def test_from_stacked_ignores_extra_keys_and_matches_spec_apply():
    full = random_cnn_spec([2, 3, 4], 3, 4, 5, batchnorm=True)
    spec = metanet_spec(full)
    assert all(not e.buffer for e in spec.entries.values())
    gen = torch.Generator().manual_seed(1)
    stacked = random_weights(full, gen, (3,))
    batch = WeightSpaceBatch.from_stacked(spec, stacked)
    g = spec.random_element(gen, batch_shape=(3,))
    moved = batch.apply(g).to_stacked()
    expected = spec.apply({k: stacked[k] for k in spec.entries}, g, batch_dims=1)
    for k in spec.entries:
        assert torch.equal(moved[k], expected[k])
    assert not torch.equal(moved["convs.1.weight"], stacked["convs.1.weight"])


def test_metanet_spec_buffers_and_keys():
    full = random_cnn_spec([2, 3], 3, 1, 4, batchnorm=True)
    with_buffers = metanet_spec(full, include_buffers=True)
    assert "norms.0.running_mean" in with_buffers.entries
    assert "norms.0.num_batches_tracked" not in with_buffers.entries
    only = metanet_spec(full, keys=["convs.0.weight"])
    assert list(only.entries) == ["convs.0.weight"] and list(only.groups) == ["c1"]
    with pytest.raises(KeyMismatchError):
        metanet_spec(full, keys=["nope"])


def test_errors_name_the_key():
    spec = random_mlp_spec([3, 4, 2])
    sd = random_weights(spec)
    bad = dict(sd, **{"layers.1.weight": torch.zeros(2, 5)})
    with pytest.raises(ShapeMismatchError, match="layers.1.weight"):
        WeightSpaceBatch.from_state_dicts(spec, [sd, bad])
    missing = {k: v for k, v in sd.items() if k != "layers.0.bias"}
    with pytest.raises(KeyMismatchError, match="layers.0.bias"):
        WeightSpaceBatch.from_state_dicts(spec, [missing])
