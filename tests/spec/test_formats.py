"""Exports to Git Re-Basin and UNF formats, on a hand-built spec with factored axes."""
from __future__ import annotations

import pytest
from hypothesis import given, settings

from weightspace.spec import Entry, Factor, Group, WeightSpec, to_rebasin, to_unf
from weightspace.spec.formats import factored_shapes, perm_to_axes
from weightspace.testing.strategies import specs


def _axis(*factors: tuple[str | None, int]) -> tuple[Factor, ...]:
    return tuple(Factor(g, n) for g, n in factors)


@pytest.fixture
def spec() -> WeightSpec:
    """conv (2 channels) → flatten 3 positions → fc; a (heads=2, head_dim=3) projection; a scalar."""
    entries = [
        Entry("conv.weight", (2, 1, 3, 3), (_axis(("c", 2)), _axis((None, 1)), _axis((None, 3)), _axis((None, 3)))),
        Entry("conv.bias", (2,), (_axis(("c", 2)),)),
        Entry("fc.weight", (4, 6), (_axis((None, 4)), _axis(("c", 2), (None, 3)))),
        Entry("proj.weight", (6, 4), (_axis(("heads", 2), ("hd", 3)), _axis((None, 4)))),
        Entry("proj.bias", (6,), (_axis(("heads", 2), ("hd", 3)),)),
        Entry("temperature", (), ()),
    ]
    groups = [Group("c", 2, "channel"), Group("heads", 2, "head"), Group("hd", 3, "head_dim")]
    return WeightSpec(
        {e.key: e for e in entries}, {g.name: g for g in groups}, aliases={"fc_tied.weight": "fc.weight"}
    )


def test_to_rebasin(spec):
    assert to_rebasin(spec) == {
        "conv.weight": ("c", None, None, None),
        "conv.bias": ("c",),
        "fc.weight": (None, ("c", None)),
        "proj.weight": (("heads", "hd"), None),
        "proj.bias": (("heads", "hd"),),
        "temperature": (),
        "fc_tied.weight": (None, ("c", None)),
    }


def test_perm_to_axes(spec):
    assert perm_to_axes(spec) == {
        "c": [("conv.weight", 0), ("conv.bias", 0), ("fc.weight", 1)],
        "heads": [("proj.weight", 0), ("proj.bias", 0)],
        "hd": [("proj.weight", 0), ("proj.bias", 0)],
    }


def test_factored_shapes(spec):
    assert factored_shapes(spec) == {
        "conv.weight": (2, 1, 3, 3),
        "conv.bias": (2,),
        "fc.weight": (4, 2, 3),
        "proj.weight": (2, 3, 4),
        "proj.bias": (2, 3),
        "temperature": (),
    }


def test_to_unf(spec):
    assert to_unf(spec) == {
        "conv.weight": (0, -1, -1, -1),
        "conv.bias": (0,),
        "fc.weight": (-1, 0, -1),
        "proj.weight": (1, 2, -1),
        "proj.bias": (1, 2),
        "temperature": (),
    }


@settings(max_examples=25, deadline=None)
@given(specs())
def test_exports_agree_with_each_other(spec):
    shapes, unf, rebasin = factored_shapes(spec), to_unf(spec), to_rebasin(spec)
    index = {name: i for i, name in enumerate(spec.groups)}
    for key, entry in spec.entries.items():
        assert len(unf[key]) == len(shapes[key])
        assert len(rebasin[key]) == len(entry.shape)
        for label, size in zip(unf[key], shapes[key]):
            if label >= 0:
                assert spec.groups[list(spec.groups)[label]].size == size
    for name, places in perm_to_axes(spec).items():
        for key, axis in places:
            label = rebasin[key][axis]
            assert label == name or (isinstance(label, tuple) and name in label)
            assert index[name] in unf[key]
