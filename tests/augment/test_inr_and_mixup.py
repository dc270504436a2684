"""INR input-space transforms are exact in weight space; mixup mixes weights and labels."""
from __future__ import annotations


import pytest
import torch
from torch.func import functional_call

import weightspace as ws
from weightspace import augment as A
from weightspace import examples
from weightspace.augment.inr import apply_input_map, first_layer


@pytest.fixture(scope="module")
def siren():
    torch.manual_seed(0)
    model = examples.siren((2, 16, 16, 1), w0=3.0)  # smooth enough that a rendered grid is an image
    spec = ws.infer_spec(model.state_dict(), activation="sin")
    return model, spec


def _render(model, sd, coords):
    with torch.no_grad():
        return functional_call(model, sd, (coords,)).squeeze(-1)


def _grid(n: int) -> torch.Tensor:
    axis = torch.linspace(-1, 1, n, dtype=torch.float64)
    return torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1)  # (n, n, 2): [i, j] -> (x0_i, x1_j)


def test_first_layer_is_found(siren):
    _, spec = siren
    assert first_layer(spec) == ("0.weight", "0.bias")


def test_flip_translate_rot90_match_the_image_exactly(siren):
    model, spec = siren
    model = model.double()
    sd = model.state_dict()
    n = 21
    grid = _grid(n)
    image = _render(model, sd, grid)
    step = 2 / (n - 1)
    cases = {
        # content map x -> M x + delta, and the same move done on the pixel grid
        "flip x1": (torch.diag(torch.tensor([1.0, -1.0])), torch.zeros(2), lambda im: im.flip(1)),
        "shift x0 by one pixel": (torch.eye(2), torch.tensor([step, 0.0]), None),
        "rot90": (torch.tensor([[0.0, -1.0], [1.0, 0.0]]), torch.zeros(2), lambda im: torch.rot90(im, 1, (0, 1))),
    }
    for name, (M, delta, on_pixels) in cases.items():
        M, delta = M.double(), delta.double()
        Ainv = torch.linalg.inv(M)
        moved = apply_input_map(sd, Ainv, -(Ainv @ delta), "0.weight", "0.bias")
        out = _render(model, moved, grid)
        if on_pixels is None:  # the content moved one row down: row i+1 now shows row i
            torch.testing.assert_close(out[1:], image[:-1], rtol=1e-7, atol=1e-7)
        else:
            torch.testing.assert_close(out, on_pixels(image), rtol=1e-7, atol=1e-7, msg=name)


def test_random_affine_is_the_continuous_map(siren):
    """Random rotation/scale/translation/flip: J(M x + δ) = f(x) at random points."""
    model, spec = siren
    model = model.double()
    batch = {k: torch.stack([v.double()] * 5) for k, v in model.state_dict().items()}
    t = A.RandomInputAffine(spec, translate=0.3, degrees=40, scale=(0.7, 1.4), flip=(0, 1))
    assert not t.preserves_function
    gen = torch.Generator().manual_seed(3)
    M, delta = t.sample((5,), torch.Generator().manual_seed(3))
    out = t(batch, gen)
    x = torch.rand(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4)) * 2 - 1
    moved_any = False
    for i in range(5):
        y = x @ M[i].T + delta[i]
        sd_i = {k: v[i] for k, v in out.items()}
        torch.testing.assert_close(_render(model, sd_i, y), _render(model, model.state_dict(), x), rtol=1e-7, atol=1e-7)
        moved_any |= not torch.allclose(_render(model, sd_i, x), _render(model, model.state_dict(), x))
    assert moved_any


def test_one_dimensional_inr_shift_and_scale():
    torch.manual_seed(0)
    model = examples.siren((1, 8, 1), w0=2.0).double()
    spec = ws.infer_spec(model.state_dict(), activation="sin")
    t = A.RandomInputAffine(spec, translate=0.5, scale=(0.5, 2.0), flip=(0,))
    M, delta = t.sample((), torch.Generator().manual_seed(0))
    out = t(model.state_dict(), torch.Generator().manual_seed(0))
    x = torch.linspace(-1, 1, 40, dtype=torch.float64)[:, None]
    torch.testing.assert_close(_render(model, out, x @ M.T + delta), _render(model, model.state_dict(), x))
    with pytest.raises(ValueError, match="rotation needs 2-D"):
        A.RandomInputAffine(spec, degrees=10)


def test_inr_recipe_rotates_two_dimensional_inputs_only(siren):
    """The recipe's affine map rotates 2-D coordinates (±10°) and shifts/scales a 1-D
    INR's (MNIST-1D) without the rotation error."""
    affine = lambda spec: next(t for t in A.inr_recipe(spec).transforms if isinstance(t, A.RandomInputAffine))  # noqa: E731
    assert affine(siren[1]).degrees == 10
    torch.manual_seed(0)
    model = examples.siren((1, 8, 1))
    spec = ws.infer_spec(model.state_dict(), activation="sin")
    t = affine(spec)
    assert (t.degrees, t.translate, t.scale) == (0, 0.05, (0.95, 1.05))
    batch = {k: torch.stack([v] * 4) for k, v in model.state_dict().items()}
    out = A.inr_recipe(spec)(batch, torch.Generator().manual_seed(0))
    assert not torch.allclose(out["0.weight"], batch["0.weight"])


def test_mixup_weights_and_labels_agree():
    torch.manual_seed(0)
    model = examples.siren((2, 8, 1))
    spec = ws.infer_spec(model.state_dict(), activation="sin")
    gen = torch.Generator().manual_seed(5)
    batch = {k: torch.randn(6, *v.shape, generator=gen) for k, v in model.state_dict().items()}
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    for mode in ("plain", "permuted"):
        mixed, soft = A.Mixup(spec, num_classes=4, alpha=0.4, mode=mode)(batch, labels, torch.Generator().manual_seed(1))
        assert soft.shape == (6, 4)
        torch.testing.assert_close(soft.sum(1), torch.ones(6))
        lam = soft.gather(1, labels[:, None]).squeeze(1)  # λ plus (1-λ) when partner shares the label
        assert bool(((lam >= 0) & (lam <= 1 + 1e-6)).all())
        if mode == "plain":
            index = torch.randperm(6, generator=torch.Generator().manual_seed(1))
            for i in range(6):
                if labels[index[i]] == labels[i]:
                    continue
                w = float(soft[i, labels[i]])
                torch.testing.assert_close(mixed["0.weight"][i], w * batch["0.weight"][i] + (1 - w) * batch["0.weight"][index[i]])
    with pytest.raises(ValueError, match="mode"):
        A.Mixup(spec, num_classes=4, mode="nope")
