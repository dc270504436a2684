"""Full models: equivariant stacks and invariant classifiers on every parsed architecture."""
import pytest
import torch

from weightspace.errors import ConfigError
from weightspace.nn import EquivariantNetwork, InvariantClassifier, WeightSpaceBatch
from weightspace.testing import assert_equivariant, assert_invariant, assert_negative_control, random_weights

from .specs import CHAINS, PARSED, parsed

KINDS = [("unf", a) for a in PARSED] + [(k, a) for a in CHAINS for k in ("np", "hnp")]


@pytest.mark.parametrize("kind, arch", KINDS)
def test_equivariant_network(kind, arch):
    spec = parsed(arch)
    net = EquivariantNetwork(spec, (4,), in_channels=1, out_channels=2, layer=kind).double()
    assert_equivariant(net, spec, batch_dims=2, batch_shape=(2, 1))
    assert_negative_control(net, spec, spec, batch_dims=2, batch_shape=(2, 1))
    assert_equivariant(net.float(), spec, dtype=torch.float32, rtol=1e-5, atol=1e-6, batch_dims=2, batch_shape=(2, 1))


@pytest.mark.parametrize("kind, arch", KINDS)
def test_invariant_classifier(kind, arch):
    spec = parsed(arch)
    clf = InvariantClassifier(spec, 3, (4, 4), hidden=(8,), layer=kind).double()
    assert_invariant(clf, spec, batch_dims=2, batch_shape=(2, 1))
    assert_negative_control(clf, spec, batch_dims=2, batch_shape=(2, 1))
    assert_invariant(clf.float(), spec, dtype=torch.float32, rtol=1e-5, atol=1e-6, batch_dims=2, batch_shape=(2, 1))


@pytest.mark.parametrize("kind", ["np", "hnp", "unf"])
def test_every_parameter_gets_gradient(kind):
    """No basis term is dead: each coefficient moves the loss."""
    spec = parsed("siren")
    clf = InvariantClassifier(spec, 3, (4, 4), hidden=(8,), layer=kind, io_embed=True) if kind == "np" else (
        InvariantClassifier(spec, 3, (4, 4), hidden=(8,), layer=kind)
    )
    with torch.no_grad():  # non-zero biases so every term sees non-trivial inputs
        for name, p in clf.named_parameters():
            if "bias" in name:
                p.normal_(0, 0.1)
    batch = WeightSpaceBatch.from_stacked(spec, random_weights(spec, torch.Generator().manual_seed(0), (8,)))
    clf(batch).square().sum().backward()
    dead = [n for n, p in clf.named_parameters() if p.grad is None or not bool((p.grad != 0).any())]
    assert dead == []


def test_classifier_learns_an_invariant_task():
    """Tell the sign of a SIREN's mean output weight: an invariant label, learned in a few steps."""
    spec = parsed("siren")
    gen = torch.Generator().manual_seed(0)
    stacked = random_weights(spec, gen, (64,))
    labels = (stacked["4.weight"].sum((1, 2)) > 0).long()
    batch = WeightSpaceBatch.from_stacked(spec, stacked)
    torch.manual_seed(0)
    clf = InvariantClassifier(spec, 2, (8, 8), hidden=(16,), layer="np")
    opt = torch.optim.Adam(clf.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(clf(batch), labels)
        first = float(loss) if first is None else first
        loss.backward()
        opt.step()
    acc = float((clf(batch).argmax(1) == labels).float().mean())
    assert float(loss) < 0.5 * first and acc > 0.9


def test_unknown_layer_kind():
    with pytest.raises(ConfigError, match="unknown layer kind"):
        InvariantClassifier(parsed("mlp"), 2, layer="gnn")


def test_output_shapes_and_state_dicts():
    spec = parsed("cnn")
    net = EquivariantNetwork(spec, (3,), out_channels=1, layer="unf")
    batch = WeightSpaceBatch.from_stacked(spec, random_weights(spec, torch.Generator().manual_seed(0), (2,)))
    out = WeightSpaceBatch(spec, net(batch))
    sds = out.to_state_dicts()
    assert len(sds) == 2 and all(sds[0][k].shape == e.shape for k, e in spec.entries.items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["np", "unf"])
def test_cuda_matches_cpu(kind):
    spec = parsed("cnn")
    clf = InvariantClassifier(spec, 3, (4, 4), hidden=(8,), layer=kind)
    batch = WeightSpaceBatch.from_stacked(spec, random_weights(spec, torch.Generator().manual_seed(0), (4,)))
    cpu = clf(batch)
    gpu = clf.cuda()(batch.to("cuda"))
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-4, rtol=1e-4)
    assert_invariant(clf.double(), spec, batch_dims=2, batch_shape=(2, 1),
                     inputs={k: v.cuda() for k, v in random_weights(spec, batch_shape=(2, 1), dtype=torch.float64).items()})


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["np", "unf"])
def test_torch_compile_matches_eager(kind):
    spec = parsed("siren")
    clf = InvariantClassifier(spec, 3, (4, 4), hidden=(8,), layer=kind)
    batch = WeightSpaceBatch.from_stacked(spec, random_weights(spec, torch.Generator().manual_seed(0), (4,)))
    compiled = torch.compile(clf)
    assert torch.allclose(compiled(batch.tensors), clf(batch.tensors), atol=1e-5)
