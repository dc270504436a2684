"""Metanetworks: models that read weights, built from a `WeightSpec`.

    from weightspace.nn import WeightSpaceBatch, InvariantClassifier, metanet_spec
    spec = metanet_spec(ws.parse(model, inputs))          # the entries to read
    batch = WeightSpaceBatch.from_state_dicts(spec, state_dicts)
    clf = InvariantClassifier(spec, num_classes=10, layer="unf")
    logits = clf(batch)

Layers (equivariant linear maps, features `key -> (B, C, *shape)`):
`NPLinear`/`HNPLinear` (NFN, Zhou et al. 2023; MLP/CNN chains) and `UNFLinear`
(Universal Neural Functionals, Zhou et al. 2024; any spec). Invariant pooling:
`NPPool`, `HNPPool`, `UNFPool`. Models: `EquivariantNetwork`, `InvariantClassifier`.
Signs and scales (sine/tanh flips, ReLU rescalings, from the spec's `extra_action`):
`Canonicalize` (the canonical form), `CanonicalInvariant` (classification head),
`CanonicalEquivariant` (editing head) around any permutation-equivariant model.
Input encoding: `FourierFeatures` (octaves elementwise, so symmetry-neutral; Gaussian
per graph edge for the GMNs). Baselines: `FlatMLP`, `StatMLP` (augmentation:
`weightspace.augment.RandomSymmetry`).
"""
from .baselines import FlatMLP, StatMLP
from .batch import WeightSpaceBatch, metanet_spec
from .canonical import CanonicalEquivariant, CanonicalInvariant, Canonicalize
from .fourier import FourierFeatures
from .models import EquivariantNetwork, InvariantClassifier
from .nfn import HNPLinear, HNPPool, NPLinear, NPPool
from .unf import UNFLinear, UNFPool
from .unf_basis import UNFBasis

__all__ = [
    "CanonicalEquivariant",
    "CanonicalInvariant",
    "Canonicalize",
    "EquivariantNetwork",
    "FlatMLP",
    "FourierFeatures",
    "HNPLinear",
    "HNPPool",
    "InvariantClassifier",
    "NPLinear",
    "NPPool",
    "StatMLP",
    "UNFBasis",
    "UNFLinear",
    "UNFPool",
    "WeightSpaceBatch",
    "metanet_spec",
]
