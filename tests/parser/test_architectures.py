"""`ws.parse` on the architecture catalog: group sizes, verified status, function invariance.

Parser-dependent tests import `weightspace.parse` inside the test body, so this file
collects (and the catalog test runs) even before the parser exists.

The functional checks are independent of the parser's own verification: they apply
random group elements with `WeightSpec.apply` to the model's state dict and run the
model through `torch.func.functional_call`, and a negative control permutes a single
tensor factor (which must change the output).
"""
from __future__ import annotations

import functools

import pytest
import torch
from torch.func import functional_call

from .architectures import CATALOG, Arch, by_name

ATOL_REL = 1e-4  # invariance: relative max error
NEG_REL = 1e-3  # negative control: minimal relative change


# RNN modules re-assign their `_flat_weights` while export swaps parameters (harmless)
pytestmark = pytest.mark.filterwarnings("ignore:The tensor attributes self.rnn._flat_weights:UserWarning")


def _params():
    return [pytest.param(a, id=a.name) for a in CATALOG]


def _build(arch: Arch):
    if arch.hf:
        pytest.importorskip("transformers")
    return arch.build()


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a - ref).abs().max() / ref.abs().max().clamp_min(1e-12))


def _tie_classes(model: torch.nn.Module) -> list[set[str]]:
    """State-dict names that are the same tensor (tied weights), from the model itself."""
    by_tensor: dict[int, set[str]] = {}
    named = list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False))
    for name, t in named:
        by_tensor.setdefault(id(t), set()).add(name)
    return [names for names in by_tensor.values() if len(names) > 1]


def _retie(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Make every tied key hold the same tensor object (functional_call's tie_weights
    rejects distinct objects); the tied copies must agree in value."""
    out = dict(sd)
    for names in _tie_classes(model):
        present = sorted(n for n in names if n in out)
        if not present:
            continue
        first = out[present[0]]
        for n in present[1:]:
            assert torch.equal(out[n], first), f"tied keys {present[0]!r} and {n!r} were transformed differently"
            out[n] = first
    return out


@torch.no_grad()
def _run(model: torch.nn.Module, sd: dict[str, torch.Tensor], inputs: tuple) -> torch.Tensor:
    return functional_call(model, _retie(model, sd), inputs, strict=False, tie_weights=True)


def _derangement(n: int, gen: torch.Generator) -> torch.Tensor:
    assert n >= 2
    while True:
        p = torch.randperm(n, generator=gen)
        if bool((p != torch.arange(n)).all()):
            return p


@functools.lru_cache(maxsize=None)
def _parsed(name: str):
    """Build and parse once per arch (shared by the tests below)."""
    import weightspace as ws

    arch = by_name(name)
    model, inputs = _build(arch)
    with torch.no_grad():
        ref = model(*inputs)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spec = ws.parse(model, inputs)
    return model, inputs, ref, before, spec


# ---------------------------------------------------------------------------- parser-free
@pytest.mark.parametrize("arch", _params())
def test_catalog_builds_and_exports(arch: Arch):
    model, inputs = _build(arch)
    assert not model.training
    with torch.no_grad():
        y1 = model(*inputs)
        y2 = model(*inputs)
    assert isinstance(y1, torch.Tensor) and y1.dtype == torch.float32
    assert torch.isfinite(y1).all()
    assert torch.equal(y1, y2), "forward is not deterministic"

    # the builder is seeded: a second build gives the same weights and inputs
    model2, inputs2 = _build(arch)
    sd1, sd2 = model.state_dict(), model2.state_dict()
    assert list(sd1) == list(sd2)
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    assert all(torch.equal(a, b) for a, b in zip(inputs, inputs2))

    ep = torch.export.export(model, inputs, strict=False)
    with torch.no_grad():
        y3 = ep.module()(*inputs)
    assert _rel(y3, y1) <= 1e-5

    # every parameter influences the output (no dead parameters): a 10% perturbation of
    # any one parameter tensor changes the output (a gradient test would miss parameters
    # that are dead only up to rounding, such as an attention key bias)
    gen = torch.Generator().manual_seed(0)
    params = {n: p.detach() for n, p in model.named_parameters()}
    dead = []
    for n, p in params.items():
        noisy = p + 0.1 * p.abs().mean().clamp_min(1e-3) * torch.randn(p.shape, generator=gen)
        change = _rel(_run(model, {**params, n: noisy}, inputs), y1)
        if change < 1e-5:
            dead.append((n, change))
    assert not dead, f"dead parameters: {dead}"


# ---------------------------------------------------------------------------- parser
@pytest.mark.parametrize("arch", _params())
def test_parse_group_sizes(arch: Arch):
    model, inputs, ref, before, spec = _parsed(arch.name)
    sizes = sorted(g.size for g in spec.groups.values())
    allowed = [sorted(arch.expected)] + [sorted(a) for a in arch.acceptable]
    assert sizes in allowed, f"{arch.name}: got group sizes {sizes}, expected {arch.expected}; spec: {spec!r}"
    assert spec.verified is True
    spec.check(model.state_dict())  # every state-dict key is an entry or an alias, shapes agree
    # parse left the model alone
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with torch.no_grad():
        assert torch.equal(model(*inputs), ref)


@pytest.mark.parametrize("arch", _params())
def test_parse_permutations_preserve_function(arch: Arch):
    model, inputs, ref, _, spec = _parsed(arch.name)
    sd = model.state_dict()
    for seed in range(3):
        g = spec.random_element(torch.Generator().manual_seed(seed))
        sd2 = spec.apply(sd, g)
        assert set(sd2) == set(sd)
        out = _run(model, sd2, inputs)
        err = _rel(out, ref)
        assert err <= ATOL_REL, f"{arch.name}: seed {seed}: permuted model differs (rel. err {err:.2e})"


@pytest.mark.parametrize("arch", _params())
def test_parse_negative_control(arch: Arch):
    """Permuting one factor of one tensor alone (not the whole group) changes the output."""
    model, inputs, ref, _, spec = _parsed(arch.name)
    assert spec.groups, "no groups to test"
    name = next(iter(spec.groups))
    member = spec.members(name)[0]
    entry = spec.entry(member.key)
    sd = model.state_dict()
    t = sd[member.key]
    factors = [f.size for f in entry.axes[member.axis]]
    view = t.reshape(*t.shape[: member.axis], *factors, *t.shape[member.axis + 1 :])
    perm = _derangement(spec.groups[name].size, torch.Generator().manual_seed(0))
    new = view.index_select(member.axis + member.factor, perm).reshape(t.shape)
    sd2 = dict(sd)
    sd2[member.key] = new
    for names in _tie_classes(model):  # a tied tensor is one tensor: change every name of it
        if member.key in names:
            for n in names:
                sd2[n] = new
    out = _run(model, sd2, inputs)
    change = _rel(out, ref)
    assert change > NEG_REL, (
        f"{arch.name}: permuting only {member.key} axis {member.axis} factor {member.factor} "
        f"(group {name!r}) left the output unchanged (rel. change {change:.2e})"
    )
