"""Git Re-Basin alignment and model merging on any parsed model.

    import weightspace as ws
    spec = ws.parse(model, (x,))
    g = ws.align.weight_matching(spec, sd_a, sd_b).element  # spec.apply(sd_b, g) is B aligned to A
    path = ws.align.barrier(model, sd_a, spec.apply(sd_b, g), test_batches, reset_bn=train_batches)
    merged = ws.align.interpolate(sd_a, spec.apply(sd_b, g), 0.5)
    moved = ws.align.transfer_trajectory(spec, checkpoints, new_init, ws.align.loss_gradient(model, batches))

Weight matching needs only the spec; activation and STE matching, BatchNorm reset,
REPAIR and barriers also take the model (as a template, never modified) and data;
trajectory transfer (GMT/FGMT) takes a gradient function, e.g. `loss_gradient`.
"""
from .activation_matching import activation_matching
from .barrier import LossPath, barrier
from .bn_reset import reset_batchnorm
from .interpolate import interpolate
from .merge import merge_many
from .plot import plot_paths
from .repair import repair
from .ste import SteMatching, ste_matching
from .transfer import TrajectoryTransfer, loss_gradient, transfer_trajectory
from .weight_matching import Matching, weight_matching

__all__ = [
    "LossPath",
    "Matching",
    "SteMatching",
    "TrajectoryTransfer",
    "activation_matching",
    "barrier",
    "interpolate",
    "loss_gradient",
    "merge_many",
    "plot_paths",
    "repair",
    "reset_batchnorm",
    "ste_matching",
    "transfer_trajectory",
    "weight_matching",
]
