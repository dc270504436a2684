"""Sign/scale canonicalization: permutations AND the spec's signs/scales, float64, with negative controls."""
import pytest
import torch

from weightspace.errors import ConfigError
from weightspace.nn import (
    CanonicalEquivariant, CanonicalInvariant, Canonicalize, EquivariantNetwork, InvariantClassifier, metanet_spec,
)
from weightspace.spec import Entry, ExtraAction, Factor, Group, WeightSpec
from weightspace.testing import assert_equivariant, assert_invariant, assert_negative_control, random_weights

from .specs import extra_spec

ARCHS = ("mlp", "siren", "cnn")
KINDS = {"mlp": "scale", "siren": "sign", "cnn": "scale"}
BATCH = dict(batch_dims=2, batch_shape=(3, 2))


def _classifier(spec, layer="hnp"):
    return InvariantClassifier(spec, 3, (4, 4), hidden=(8,), in_channels=2, layer=layer)


def _editor(spec, layer="hnp"):
    return EquivariantNetwork(spec, (4,), in_channels=2, out_channels=2, layer=layer)


class ReversedOrder(Canonicalize):
    """Broken on purpose: canonicalizes the later group first, so its statistic still moves with the earlier one."""

    def __init__(self, spec):
        super().__init__(spec)
        self.order = self.order[::-1]


class NoFrame(CanonicalEquivariant):
    """Broken on purpose: returns the output in the canonical frame, never carried back by σ(x)."""

    def forward(self, x):
        return self.inner(self.canonicalize(x))


@pytest.mark.parametrize("arch", ARCHS)
def test_spec_declares_the_extra_symmetry(arch):
    spec = extra_spec(arch)
    assert {g.extra for g in spec.groups.values()} == {(KINDS[arch],)}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("layer", ["hnp", "unf"])
def test_invariant_head_under_perms_signs_scales(arch, layer):
    spec = extra_spec(arch)
    clf = CanonicalInvariant(spec, _classifier(spec, layer)).double()
    assert_invariant(clf, spec, extra=True, n_trials=4, **BATCH)
    assert_negative_control(clf, spec, **BATCH)
    assert_invariant(clf.float(), spec, extra=True, dtype=torch.float32, rtol=1e-4, atol=1e-5, **BATCH)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("layer", ["hnp", "unf"])
def test_equivariant_head_under_perms_signs_scales(arch, layer):
    spec = extra_spec(arch)
    editor = CanonicalEquivariant(spec, _editor(spec, layer)).double()
    assert_equivariant(editor, spec, extra=True, n_trials=4, **BATCH)
    assert_negative_control(editor, spec, spec, **BATCH)


@pytest.mark.parametrize("arch", ARCHS)
def test_permutation_only_layers_fail_the_extra_check(arch):
    """Negative control: the existing layers pass permutations, and must fail signs/scales."""
    spec = extra_spec(arch)
    clf, editor = _classifier(spec).double(), _editor(spec).double()
    assert_invariant(clf, spec, **BATCH)
    assert_equivariant(editor, spec, **BATCH)
    with pytest.raises(AssertionError, match="not invariant"):
        assert_invariant(clf, spec, extra=True, **BATCH)
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(editor, spec, extra=True, **BATCH)


@pytest.mark.parametrize("arch", ARCHS)
def test_broken_variants_fail(arch):
    spec = extra_spec(arch)
    clf = CanonicalInvariant(spec, _classifier(spec)).double()
    clf.canonicalize = ReversedOrder(spec)
    with pytest.raises(AssertionError, match="not invariant"):
        assert_invariant(clf, spec, extra=True, **BATCH)
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(NoFrame(spec, _editor(spec)).double(), spec, extra=True, **BATCH)


@pytest.mark.parametrize("arch", ARCHS)
def test_canonical_form_and_frame(arch):
    """c(g·x) = perm(g)·c(x) (signs/scales quotiented out), σ(x)·c(x) = x, and the statistics are normalized."""
    spec = extra_spec(arch)
    canon = Canonicalize(spec)
    assert_equivariant(canon, spec, spec.without_extras(), extra=True, **BATCH)
    x = random_weights(spec, torch.Generator().manual_seed(1), (3, 2), torch.float64)
    c, frame = canon.split(x)
    back = spec.apply(c, frame, batch_dims=2)
    assert all(torch.allclose(back[k], x[k], rtol=1e-12, atol=1e-12) for k in x)
    for name in canon.order:
        stat = canon._statistic(c, name, KINDS[arch])
        if KINDS[arch] == "scale":
            assert torch.allclose(stat, torch.ones_like(stat))
        else:
            assert bool((stat >= 0).all())


def test_specs_without_extras_pass_through():
    spec = extra_spec("mlp").without_extras()
    x = random_weights(spec, torch.Generator().manual_seed(0), (2, 1), torch.float64)
    out = Canonicalize(spec)(x)
    assert repr(Canonicalize(spec)) == "Canonicalize(no extra symmetries)"
    assert all(torch.equal(out[k], x[k]) for k in x)


def test_recurrence_has_no_canonical_form():
    h = Factor("h", 4)
    entries = {"w": Entry("w", (4, 4), ((h,), (h,)))}
    acts = (ExtraAction("w", 0, 1), ExtraAction("w", 1, -1))
    spec = metanet_spec(WeightSpec(entries, {"h": Group("h", 4, extra=("sign",), extra_action=acts)}))
    with pytest.raises(ConfigError, match="recurrence"):
        Canonicalize(spec)
