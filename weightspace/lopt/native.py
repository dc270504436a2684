"""The fused native step of the per-parameter MLP, Deep-Set and group-context rules (float32, CPU).

`native_step.cpp` does the whole optimizer step in a few passes over each tensor (state
update, per-tensor and per-group statistics, the meta-network and the update, per element
in registers; see the file's header), parallel over pieces of the tensors on torch's
intra-op thread count. It is built on first use with `torch.utils.cpp_extension.load_inline`
(g++ and ninja, `-O3 -march=native -fopenmp`, a few seconds: no torch headers) into the torch
extensions directory, once per machine (the name carries the CPU's feature flags), and
called through ctypes. Without a compiler the step falls back to the torch in-place path
with one warning. `WEIGHTSPACE_LOPT_NATIVE=0` or `rule.native = False` forces the torch path.

Same update as `LearnedRule.forward` to float32 rounding (tests/lopt/test_native.py):
sums run in float lanes flushed into double, tanh is a rational approximation (|error| <
1e-6), and the result depends slightly on the thread count (summation order).
"""
from __future__ import annotations

import ctypes
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import torch
from torch.autograd.graph import increment_version

from ..native import load_library
from ..spec import WeightSpec
from .features import State
from .nets import DeepSetMLP, GroupContextMLP, PerParameterMLP
from .rule import LearnedRule

ENV_VAR = "WEIGHTSPACE_LOPT_NATIVE"
SOURCE = Path(__file__).with_name("native_step.cpp")
SCRATCH_MAX_HIDDEN = 8  # pooling nets up to this width keep their hidden features between passes
# net type -> (pools over the tensor, pools over the spec's groups)
POOLING = {PerParameterMLP: (False, False), DeepSetMLP: (True, False), GroupContextMLP: (True, True)}


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The built kernel (compiled on the first call of a machine, loaded once per process), or None.

    None, with one `RuntimeWarning`, where it cannot be built (no compiler, no ninja, no OpenMP).
    """
    try:
        lib = load_library("weightspace_lopt", SOURCE)
    except Exception as err:  # any build or load failure means: use the torch path
        warnings.warn(f"weightspace.lopt: the native step could not be built ({err}); using the torch step",
                      RuntimeWarning, stacklevel=2)
        return None
    lib.ws_lopt_step.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_double),
                                 ctypes.POINTER(ctypes.c_void_p), ctypes.c_int64]
    lib.ws_lopt_step.restype = None
    limits = (ctypes.c_int64 * 4)()
    lib.ws_lopt_limits(limits)
    lib.limits = tuple(limits)
    return lib


def _fits(rule: LearnedRule, lib: ctypes.CDLL) -> bool:
    """Whether the rule's sizes are within the build's limits (momenta, time scales, channels, layers)."""
    config, net = rule.features, rule.net
    max_m, max_t, max_c, max_l = lib.limits
    return (len(config.momentum_decays) <= max_m and len(config.time_scales) <= max_t
            and max(config.num_raw, net.hidden) <= max_c and net.layers <= max_l)


def _cpu_float(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype == torch.float32


def supports_native(
    rule: LearnedRule,
    params: Mapping[str, torch.Tensor],
    grads: Mapping[str, torch.Tensor],
    states: Mapping[str, State],
    spec: WeightSpec | None,
) -> bool:
    """Whether `native_step` serves this call: a fused mlp/deepset/groups rule with one output
    channel, float32 CPU weights and tensors (parameters and state contiguous, none empty), the
    spec where the net needs one, not switched off (`rule.native`, `WEIGHTSPACE_LOPT_NATIVE=0`),
    and a kernel that builds (tried here, once per process)."""
    net = rule.net
    if not (rule.fused and rule.native and os.environ.get(ENV_VAR, "1") != "0"):
        return False
    if type(net) not in POOLING or net.out_channels != 1 or (spec is None and POOLING[type(net)][1]):
        return False
    if not all(_cpu_float(w) for w in net.parameters()) or not _cpu_float(rule.log_alpha):
        return False
    for k, p in params.items():
        state = states[k]
        tensors = (p, grads[k], state["momenta"], state["rms"], state["step"])
        if p.numel() == 0 or not all(_cpu_float(t) for t in tensors):
            return False
        if not (p.is_contiguous() and state["momenta"].is_contiguous() and state["rms"].is_contiguous()):
            return False
    lib = library()
    return lib is not None and _fits(rule, lib)


def scratch_size(rule: LearnedRule, numel: int) -> int:
    """Floats of scratch `native_step` uses over `numel` parameter elements (0: none).

    Pooling nets of several layers make one more pass per hidden layer but the last; up to
    `SCRATCH_MAX_HIDDEN` channels, each such pass stores its layer's output (H floats per
    element), so the next pass reads it instead of recomputing the features and earlier layers.
    """
    net = rule.net
    if POOLING[type(net)][0] and net.layers > 1 and net.hidden <= SCRATCH_MAX_HIDDEN:
        return net.hidden * numel
    return 0


def bytes_per_element(rule: LearnedRule) -> int:
    """Bytes one native step streams per parameter element (float32). The first pass reads the
    parameter, gradient, momenta and RMS (R = 3 + M floats) and writes momenta and RMS; every
    hidden pass of a pooling net reads them again (or, with a scratch, the previous hidden
    features) and, with a scratch, writes its hidden features; the last pass reads them (with a
    scratch: the hidden features, parameter, nominal momentum and RMS) and writes the parameter."""
    m, net = len(rule.features.momentum_decays), rule.net
    hidden = net.layers - 1 if POOLING[type(net)][0] else 0
    floats = (3 + m) + (m + 1) + 1
    if scratch_size(rule, 1):
        h = net.hidden
        floats += (3 + m + h) + (hidden - 1) * 2 * h + (h + 3)
    else:
        floats += (3 + m) * (hidden + 1)
    return 4 * floats


def _members(net: torch.nn.Module, spec: WeightSpec | None, keys: list[str]):
    """Per key: (factored shape, [(factor dim, group id)]), and the size of every group id."""
    if not isinstance(net, GroupContextMLP):
        return {k: ((), []) for k in keys}, []
    plan = net._plan(spec, keys)
    ids: dict[str, int] = {}
    sizes: list[int] = []
    out = {}
    for k in keys:
        factored, members = plan.factored[k], []
        for d, g in plan.members[k]:
            if g not in ids:
                ids[g] = len(sizes)
                sizes.append(factored[d])
            members.append((d, ids[g]))
        out[k] = (tuple(factored), members)
    return out, sizes


@torch.no_grad()
def native_step(
    rule: LearnedRule,
    params: Mapping[str, torch.Tensor],
    grads: Mapping[str, torch.Tensor],
    states: Mapping[str, State],
    spec: WeightSpec | None,
    lrs: Mapping[str, float],
    scratch: torch.Tensor | None = None,
) -> None:
    """One step of `rule` in place (`params` and `states`), where `supports_native` holds.

    Arguments as `inplace.inplace_step`; `scratch`: float32 CPU, at least `scratch_size` floats
    (None where that is 0). The argument layout below matches `ws_lopt_step` in native_step.cpp.
    """
    lib = library()
    config, net = rule.features, rule.net
    keys = list(params)
    tensor_ctx, group_ctx = POOLING[type(net)]
    layout, sizes = _members(net, spec, keys)
    ints = [len(keys), len(config.momentum_decays), len(config.time_scales), net.hidden, net.layers,
            int(rule.nominal == "adam"), rule.nominal_index, int(rule.bound == "relative"),
            int(tensor_ctx), int(group_ctx), len(sizes), *sizes]
    for k in keys:
        factored, members = layout[k]
        ints += [params[k].numel(), len(factored), *factored, len(members)]
        for d, g in members:
            ints += [d, g]
    alpha, beta = float(rule.log_alpha.exp()), float(rule.log_beta.exp())
    reals = [config.rms_decay, config.eps, beta, *config.momentum_decays, *config.time_scales]
    reals += [lrs[k] * alpha for k in keys]
    pooled = getattr(net, "pooled", None)
    grouped = getattr(net, "grouped", None)
    alive = [layer.weight.detach().contiguous() for layer in net.body]
    alive += [layer.bias.detach().contiguous() for layer in net.body]
    ptrs = [t.data_ptr() for t in alive]
    for mods in (pooled, grouped):
        if mods is None:
            ptrs += [None] * net.layers
        else:
            ws = [m.weight.detach().contiguous() for m in mods]
            alive += ws
            ptrs += [w.data_ptr() for w in ws]
    head = [net.head.weight.detach().contiguous(), net.head.bias.detach().contiguous()]
    alive += head
    ptrs += [t.data_ptr() for t in head]
    ptrs.append(None if scratch is None else scratch.data_ptr())
    for k in keys:
        g = grads[k].contiguous()
        alive.append(g)
        state = states[k]
        ptrs += [params[k].data_ptr(), g.data_ptr(), state["momenta"].data_ptr(), state["rms"].data_ptr(),
                 state["step"].data_ptr()]
    lib.ws_lopt_step((ctypes.c_int64 * len(ints))(*ints), (ctypes.c_double * len(reals))(*reals),
                     (ctypes.c_void_p * len(ptrs))(*ptrs), torch.get_num_threads())
    # written through raw pointers: tell autograd, as an in-place torch op would
    increment_version([t for k in keys for t in (params[k], *states[k].values())])
