"""The public surface is pinned: each package exports exactly these names, each importable and documented.

Everything else is imported from its defining submodule (`from weightspace.nn.unf_basis import bell`).
Changing a list here is an API change: say so in the changelog.
"""
from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC = {
    "weightspace": [
        "Entry", "ExtraAction", "Factor", "FrozenAxis", "Group", "GroupElement", "ParsedModel",
        "WeightSpec", "WeightspaceError", "infer_spec", "load", "load_spec", "parse", "parse_model", "save",
    ],
    "weightspace.spec": [
        "Entry", "ExtraAction", "Factor", "FrozenAxis", "Group", "GroupElement", "WeightSpec", "to_rebasin", "to_unf",
    ],
    "weightspace.parser": ["ParsedModel", "infer_spec", "parse", "parse_model"],
    "weightspace.io": ["load", "load_spec", "save"],
    "weightspace.merge": [
        "GreedySoup", "GroupMerge", "MergedModel", "StreamReport", "ZippedModel", "greedy_soup", "merge_files",
        "merge_models", "zip_models",
    ],
    "weightspace.align": [
        "LossPath", "Matching", "SteMatching", "TrajectoryTransfer", "activation_matching", "barrier", "interpolate",
        "loss_gradient", "merge_many", "plot_paths", "repair", "reset_batchnorm", "ste_matching",
        "transfer_trajectory", "weight_matching",
    ],
    "weightspace.augment": [
        "Compose", "GaussianNoise", "MagnitudePruning", "Mixup", "RandomApply", "RandomInputAffine",
        "RandomSymmetry", "SirenBiasShift", "Transform", "WeightDropout", "inr_recipe",
    ],
    "weightspace.graph": [
        "GraphStructure", "ParamGraph", "build_graph", "from_module", "from_parsed", "graph_structure",
        "node_permutation", "to_state_dict",
    ],
    "weightspace.lopt": ["LearnedOptimizer", "LearnedRule", "load_rule", "save_rule"],
    "weightspace.generate": [
        "CheckpointDiffusion", "CheckpointPairs", "EquivariantDenoiser", "PairNormalizer", "TensorRows",
        "TransformerDenoiser", "generate", "load_generator", "save_generator", "train_generator",
    ],
    "weightspace.nn": [
        "CanonicalEquivariant", "CanonicalInvariant", "Canonicalize", "EquivariantNetwork", "FlatMLP", "FourierFeatures", "HNPLinear", "HNPPool", "InvariantClassifier",
        "NPLinear", "NPPool", "StatMLP", "UNFBasis", "UNFLinear", "UNFPool", "WeightSpaceBatch", "metanet_spec",
    ],
    "weightspace.nn.gmn": [
        "EdgeMPNNLayer", "GMNClassifier", "GMNEquivariant", "GraphInputs", "GraphMetaNetwork",
        "InvariantReadout", "ProbeFeatures", "RelationalTransformerLayer", "ScaleGMN", "ScaleGMNClassifier",
        "ScaleMPNNLayer", "edge_widths",
    ],
    "weightspace.testing": [
        "assert_equivariant", "assert_invariant", "assert_negative_control", "random_attention_spec",
        "random_cnn_spec", "random_mlp_spec", "random_weights", "single_axis_spec",
    ],
}

SUBPACKAGES = ("align", "augment", "examples", "generate", "graph", "io", "lopt", "nn", "parser", "spec", "testing")


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_all_is_pinned(package):
    assert sorted(importlib.import_module(package).__all__) == sorted(PUBLIC[package])


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_every_public_name_is_importable_and_documented(package):
    module = importlib.import_module(package)
    for name in PUBLIC[package]:
        value = getattr(module, name)
        assert inspect.getdoc(value), f"{package}.{name} has no docstring"
        assert value is getattr(importlib.import_module(value.__module__), value.__qualname__), (
            f"{package}.{name} is not the object its module {value.__module__} defines"
        )


def test_top_level_reexports_are_the_subpackages_objects():
    import weightspace as ws
    from weightspace import errors, io, parser, spec

    for name in PUBLIC["weightspace"]:
        home = next(m for m in (spec, parser, io, errors) if name in getattr(m, "__all__", dir(m)))
        assert getattr(ws, name) is getattr(home, name)
    for name in SUBPACKAGES:
        assert getattr(ws, name) is importlib.import_module(f"weightspace.{name}")
    with pytest.raises(AttributeError):
        ws.SpecError  # noqa: B018 - the named errors live in weightspace.errors only
