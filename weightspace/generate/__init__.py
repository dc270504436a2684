"""Generative models of checkpoints: G.pt-style conditional diffusion over one spec's weights.

Peebles et al., *Learning to Learn with Generative Models of Neural Network
Checkpoints* (G.pt, 2022): train a diffusion model on (start, target) checkpoint
pairs of many training runs, conditioned on the start checkpoint and the start and
target metric, then "optimize" a network in one step by prompting a metric.

    from weightspace.generate import (CheckpointPairs, CheckpointDiffusion, train_generator,
                                      save_generator, load_generator, generate)
    pairs = CheckpointPairs.from_trajectories(spec, weights, metric)    # (R, C, *shape), (R, C)
    model = CheckpointDiffusion(spec, "equivariant")                   # or "transformer" (G.pt's)
    train_generator(model, pairs, steps=2000, batch=64, lr=1e-3)
    save_generator("gen.safetensors", model)
    new = generate(model, init_state_dict, target_metric=0.3)            # a state dict

Denoisers: `EquivariantDenoiser` (ours: NFN/UNF layers, FiLM conditioning,
equivariant to the spec's permutations) and `TransformerDenoiser` (G.pt's: per-layer
tokens and a transformer, not equivariant). The diffusion runs on the update
target − start, normalized per tensor (`PairNormalizer`); sampling is DDIM.
Command line: `weightspace generate --model gen.safetensors --from init.safetensors
--target-loss L --out out.safetensors`.
"""
from .diffusion import CheckpointDiffusion
from .equivariant import EquivariantDenoiser
from .normalize import PairNormalizer
from .pairs import CheckpointPairs, TensorRows
from .prompt import generate
from .serialize import load_generator, save_generator
from .train import train_generator
from .transformer import TransformerDenoiser

__all__ = [
    "CheckpointDiffusion",
    "CheckpointPairs",
    "EquivariantDenoiser",
    "PairNormalizer",
    "TensorRows",
    "TransformerDenoiser",
    "generate",
    "load_generator",
    "save_generator",
    "train_generator",
]
