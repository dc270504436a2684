"""The equivariant denoiser commutes with random spec permutations (float64, normalizer
included, MLP and CNN specs); the transformer denoiser does not (the negative control),
and neither does the equivariant one under a permutation outside the group."""
from __future__ import annotations

import pytest
import torch

from weightspace.generate import CheckpointDiffusion, CheckpointPairs
from weightspace.testing import (
    assert_equivariant,
    assert_negative_control,
    random_cnn_spec,
    random_mlp_spec,
)

SPECS = {
    "mlp": random_mlp_spec([3, 5, 4, 2]),
    "cnn": random_cnn_spec([2, 3, 4], kernel=3, flatten_hw=4, classes=2),
}
BATCH = {"batch_dims": 2, "batch_shape": (2, 2)}


def _model(spec, denoiser: str, layer: str = "np") -> CheckpointDiffusion:
    """A double-precision model with every parameter random (no zero-initialized layer left)
    and a normalizer fitted on random pairs (non-trivial per-tensor statistics)."""
    torch.manual_seed(0)
    kw = {"hidden": 8, "layers": 3, "layer": layer} if denoiser == "equivariant" else {"hidden": 16, "layers": 2, "chunk": 8}
    model = CheckpointDiffusion(spec, denoiser, timesteps=50, **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    g = torch.Generator().manual_seed(1)
    start = {k: torch.randn(6, *e.shape, generator=g) * 0.5 + 0.1 for k, e in spec.entries.items()}
    target = {k: v * 1.5 + torch.randn(v.shape, generator=g) for k, v in start.items()}
    model.fit_normalizer(CheckpointPairs(start, target, torch.rand(6, generator=g), torch.rand(6, generator=g)))
    return model.double().eval()


def _denoise(model: CheckpointDiffusion):
    """(B, 2, *shape) [noisy update, start] -> (B, 1, *shape) the predicted clean update, in
    checkpoint units (the normalizer on both ends)."""
    t = torch.tensor([7, 31])
    ms = torch.tensor([0.8, 1.1], dtype=torch.float64)
    mt = torch.tensor([0.2, 0.4], dtype=torch.float64)

    def fn(x):
        noisy = model.normalizer.update({k: v[:, 0] for k, v in x.items()})
        start = model.normalizer.start({k: v[:, 1] for k, v in x.items()})
        clean = model.normalizer.update_inverse(model.predict(noisy, start, t, ms, mt))
        return {k: v[:, None] for k, v in clean.items()}

    return fn


@pytest.mark.parametrize("layer", ["np", "hnp", "unf"])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_equivariant_denoiser_commutes_with_permutations(name, layer):
    spec = SPECS[name]
    fn = _denoise(_model(spec, "equivariant", layer))
    assert_equivariant(fn, spec, generator=torch.Generator().manual_seed(2), **BATCH)
    change = assert_negative_control(fn, spec, spec, generator=torch.Generator().manual_seed(3), **BATCH)
    assert change > 1e-4


@pytest.mark.parametrize("name", sorted(SPECS))
def test_transformer_denoiser_is_not_equivariant(name):
    spec = SPECS[name]
    fn = _denoise(_model(spec, "transformer"))
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(fn, spec, generator=torch.Generator().manual_seed(2), **BATCH)
