"""`ws.parse_model`: one export feeds the spec, the parameter graph and activation matching."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import weightspace as ws
from tests.align.models import noisy
from tests.graph.cases import edge_multiset, node_features
from tests.parser.architectures import by_name
from weightspace.align import activation_matching
from weightspace.graph import build_graph, from_module, from_parsed
from weightspace.parser.runtime import mode, relative_change, tied_aliases, tied_groups

MODELS = ["mlp", "cnn_bn"]


@pytest.fixture
def exports(monkeypatch):
    """Counts calls of torch.export.export (the parser's only way to trace)."""
    calls = []
    real = torch.export.export

    def counting(*args, **kwargs):
        calls.append(type(args[0]).__name__)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.export, "export", counting)
    return calls


def _pair(name: str):
    model, inputs = by_name(name).build()
    a = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return model, inputs, a


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args, **kwargs)


@pytest.mark.parametrize("name", MODELS)
def test_one_export_for_spec_graph_and_activation_matching(name, exports):
    model, inputs, a = _pair(name)
    parsed = _quiet(ws.parse_model, model, inputs)
    graph = from_parsed(parsed)
    planted = parsed.spec.random_element(torch.Generator().manual_seed(3))
    g = activation_matching(model, a, parsed.spec.apply(a, planted), [inputs], parsed=parsed)
    assert len(exports) == 1
    assert graph.num_nodes > 0 and parsed.spec.verified
    assert all(torch.equal(g.perms[n], planted.inverse().perms[n]) for n in parsed.spec.groups)


@pytest.mark.parametrize("name", MODELS)
def test_from_module_and_activation_matching_alone_export_once_each(name, exports):
    model, inputs, a = _pair(name)
    _quiet(from_module, model, inputs)
    assert len(exports) == 1
    _quiet(activation_matching, model, a, a, [inputs])
    assert len(exports) == 2


@pytest.mark.parametrize("name", ["mlp", "cnn_bn", "resnet_blocks", "transformer_block", "tied_lm_linear"])
def test_from_parsed_is_from_modules_graph(name):
    model, inputs, _ = _pair(name)
    parsed = _quiet(ws.parse_model, model, inputs)
    mine, theirs = from_parsed(parsed), _quiet(from_module, model, inputs)
    assert torch.equal(mine.values, theirs.values)
    assert edge_multiset(mine) == edge_multiset(theirs)
    assert torch.equal(node_features(mine), node_features(theirs))
    assert torch.equal(mine.structure.edge_index, theirs.structure.edge_index)
    assert dict(mine.aliases) == dict(theirs.aliases)
    # another state dict of the architecture lands on the same structure
    other = {k: v + 1.0 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    assert torch.equal(from_parsed(parsed, other).values, build_graph(parsed.spec, other, parsed.roles).values)


@pytest.mark.parametrize("name", ["mlp", "resnet_blocks", "transformer_block"])
def test_activation_matching_with_and_without_a_parsed_model_agree(name):
    model, inputs, a = _pair(name)
    parsed = _quiet(ws.parse_model, model, inputs)
    spec = parsed.spec
    b = noisy(spec.apply(a, spec.random_element(torch.Generator().manual_seed(6))), 0.3, seed=8)
    given = activation_matching(model, a, b, [inputs], parsed=parsed)
    own = _quiet(activation_matching, model, a, b, [inputs])
    assert {n: given.perms[n].tolist() for n in spec.groups} == {n: own.perms[n].tolist() for n in spec.groups}
    assert any(not torch.equal(p, torch.arange(len(p))) for p in given.perms.values())


def test_parse_model_holds_what_parse_returns_and_restores_train_mode():
    model, inputs, _ = _pair("cnn_bn")
    model.train()
    parsed = _quiet(ws.parse_model, model, inputs)
    assert all(m.training for m in model.modules())
    assert parsed.spec.to_dict() == _quiet(ws.parse, model.eval(), inputs).to_dict()
    assert set(parsed.roles) == set(parsed.spec.entries)
    assert parsed.input_shapes == ((2, 3, 8, 8),)
    assert repr(parsed) == (f"ParsedModel(3 groups, {len(parsed.spec.entries)} entries, "
                            f"{len(parsed.sites)} activation sites, inputs [(2, 3, 8, 8)])")
    assert {n for s in parsed.sites for f in s.factors if (n := f.group)} == set(parsed.spec.groups)
    # the traced program is the eval-mode one: BatchNorm reads its running statistics
    ops = {str(n.target) for n in parsed.program.graph.nodes if n.op == "call_function"}
    assert not any("add_" in op for op in ops)


def test_mode_restores_every_flag_and_can_hold_dropout():
    net = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.BatchNorm1d(4))
    net[2].eval()
    with mode(net, True, dropout=False) as inside:
        assert inside is net and net[0].training and net[2].training and not net[1].training
    assert [m.training for m in net.modules()] == [True, True, True, False]
    with mode(net, False):
        assert not any(m.training for m in net.modules())
    assert [m.training for m in net.modules()] == [True, True, True, False]


def test_tied_entries_and_relative_change():
    model, _, _ = _pair("tied_lm_linear")
    aliases = tied_aliases(model)
    assert aliases == {"head.weight": "emb.weight"}
    assert tied_groups(model)["emb.weight"] == ["emb.weight", "head.weight"]
    ref = [torch.tensor([1.0, -2.0]), torch.tensor([3, 4])]
    assert relative_change(ref, [torch.tensor([1.0, -2.0]), torch.tensor([3, 4])]) == 0.0
    assert relative_change(ref, [torch.tensor([1.5, -2.0]), torch.tensor([3, 4])]) == 0.25
    assert relative_change(ref, [torch.tensor([1.0, -2.0]), torch.tensor([3, 5])]) == 1.0
    assert relative_change(ref, [torch.zeros(3), torch.tensor([3, 4])]) == float("inf")
