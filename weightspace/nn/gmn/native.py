"""Fused per-edge kernels of the graph metanetworks (CPU, float32 and float64).

`native_edges.cpp` computes a layer's whole per-edge work in one pass over the edges, in
blocks of 64 edges whose activations never leave the cache: the pair MLP with its LayerNorm
(`pair_update`: the edge update of `EdgeMPNNLayer` and `RelationalTransformerLayer`, the MLP of
`EdgeHead`) and the MPNN's two message MLPs with their scatter into sums, squares and maxima
(`messages`), the readout's edge pooling (`pool`), the relational transformer's attention
with an online softmax (`attention`), and the edge encoder (`encode`: Fourier features of each
edge's values, their projection and the class table; `class_rms`: the per-class scale; values
that need a gradient take the torch path). Few torch ops are left over all edges: torch's small
E-sized ops scale badly on two threads (the unfused encoder took 2.5 s at one thread and 7 s of
wall time at two on the ResNet-18 graph). Backward recomputes each block's activations (nothing
per edge is stored but the layers' inputs and outputs), so memory stays bounded without chunking
or checkpointing.
The kernel is built on first use (`weightspace.native.load_library`); without a compiler the
layers take their torch path, with one warning.

Used where `supported` holds: a CPU float32/float64 input and module, the MLPs of `mlp.mlp`
with SiLU and no active dropout, output widths that fill the kernel's register tiles, not switched off
(the module's `native` attribute, or `WEIGHTSPACE_GMN_NATIVE=0`). Same function as the torch
path to rounding (tests/gmn/test_native.py, float64 rtol 1e-10); the float32 sigmoid uses a
polynomial exp (relative error < 2e-7) and sin/cos (Cephes' sinf/cosf up to |angle| 8192, std::sin/cos
beyond), and sums depend on the thread count (summation order).
"""
from __future__ import annotations

import ctypes
import hashlib
import math
import os
import warnings
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ...native import load_library

ENV_VAR = "WEIGHTSPACE_GMN_NATIVE"
SOURCE = Path(__file__).with_name("native_edges.cpp")
TILE_BYTES = 64  # output widths must be multiples of the kernel's register tile (2 vectors of 32 bytes)


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The built kernels (compiled on the first call of a machine, loaded once per process), or None
    with one `RuntimeWarning` where they cannot be built."""
    try:
        # the source's hash in the name: checkouts with other versions of the file share the build cache
        lib = load_library(f"weightspace_gmn_{hashlib.sha1(SOURCE.read_bytes()).hexdigest()[:8]}", SOURCE)
    except Exception as err:  # any build or load failure means: use the torch path
        warnings.warn(f"weightspace.nn.gmn: the fused edge kernels could not be built ({err}); using the torch "
                      "path", RuntimeWarning, stacklevel=2)
        return None
    for fn in (lib.ws_gmn_pair_fwd, lib.ws_gmn_pair_bwd, lib.ws_gmn_msg_fwd, lib.ws_gmn_msg_bwd,
               lib.ws_gmn_pool_fwd, lib.ws_gmn_pool_bwd, lib.ws_gmn_class_squares):
        fn.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.c_double, ctypes.POINTER(ctypes.c_void_p)]
        fn.restype = None
    for fn in (lib.ws_gmn_attn_fwd, lib.ws_gmn_attn_bwd, lib.ws_gmn_enc_fwd, lib.ws_gmn_enc_bwd):
        fn.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_void_p)]
        fn.restype = None
    return lib


def _silu_mlp(m: nn.Sequential) -> bool:
    """Whether `m` is Linear, SiLU, Linear (dropout inactive), as `mlp.mlp` builds it."""
    layers = [x for x in m if not (isinstance(x, nn.Dropout) and (x.p == 0 or not x.training))]
    return (len(layers) == 3 and isinstance(layers[0], nn.Linear) and isinstance(layers[1], nn.SiLU)
            and isinstance(layers[2], nn.Linear) and layers[0].bias is not None and layers[2].bias is not None)


def supported(module: nn.Module, x: torch.Tensor, mlps: tuple[nn.Sequential, ...] = ()) -> bool:
    """Whether the fused kernels serve `module` on per-edge features x and its `mlps` (see the module docstring)."""
    if not (getattr(module, "native", False) and os.environ.get(ENV_VAR, "1") != "0"):
        return False
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or x.shape[0] == 0:
        return False
    lanes = TILE_BYTES // x.element_size()
    widths = [x.shape[1]] + [w for m in mlps for w in (m[0].out_features, m[-1].out_features)]
    if any(w % lanes for w in widths) or not all(_silu_mlp(m) for m in mlps):
        return False
    if any(p.dtype != x.dtype or p.device.type != "cpu" for p in module.parameters()):
        return False
    return library() is not None


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _call(fn, ints: list[int], reals: float | list[float], tensors: list[torch.Tensor]) -> None:
    ptrs = [_ptr(t) for t in tensors]
    if isinstance(reals, list):
        reals = (ctypes.c_double * len(reals))(*reals)
    fn((ctypes.c_int64 * len(ints))(*ints), reals, (ctypes.c_void_p * len(ptrs))(*ptrs))


def _weights(w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor) -> list[torch.Tensor]:
    """The six arrays of one MLP in the kernel's order: W1ᵀ, b1, W2ᵀ, b2, W1, W2 (contiguous)."""
    w1, w2 = w1.contiguous(), w2.contiguous()
    return [w1.t().contiguous(), b1.contiguous(), w2.t().contiguous(), b2.contiguous(), w1, w2]


def _ints(e: torch.Tensor, n: int, w1: torch.Tensor, w2: torch.Tensor, residual: bool) -> list[int]:
    return [int(e.dtype == torch.float64), e.shape[0], n, e.shape[1], w1.shape[0], w2.shape[0], int(residual),
            torch.get_num_threads()]


class _Pair(torch.autograd.Function):
    @staticmethod
    def forward(ctx, e, src, dst, p_src, p_dst, ln_w, ln_b, w1, b1, w2, b2, eps, residual):
        e, p_src, p_dst = e.contiguous(), p_src.contiguous(), p_dst.contiguous()
        ints = _ints(e, p_src.shape[0], w1, w2, residual)
        weights = _weights(w1, b1, w2, b2)
        out = e.new_empty(e.shape[0], w2.shape[0])
        _call(library().ws_gmn_pair_fwd, ints, eps,
              [e, src, dst, p_src, p_dst, ln_w.contiguous(), ln_b.contiguous(), *weights, out])
        ctx.save_for_backward(e, src, dst, p_src, p_dst, ln_w, ln_b, w1, b1, w2, b2)
        ctx.eps, ctx.ints = eps, ints
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        e, src, dst, p_src, p_dst, ln_w, ln_b, w1, b1, w2, b2 = ctx.saved_tensors
        grads = [torch.empty_like(e), *(torch.zeros_like(t) for t in (p_src, p_dst, ln_w, ln_b)),
                 w1.new_zeros(w1.shape[1], w1.shape[0]), torch.zeros_like(b1),
                 w2.new_zeros(w2.shape[1], w2.shape[0]), torch.zeros_like(b2)]
        _call(library().ws_gmn_pair_bwd, ctx.ints, ctx.eps,
              [e, src, dst, p_src, p_dst, ln_w.contiguous(), ln_b.contiguous(), *_weights(w1, b1, w2, b2),
               grad.contiguous(), *grads])
        ge, gps, gpd, gw, gb, gw1t, gb1, gw2t, gb2 = grads
        return ge, None, None, gps, gpd, gw, gb, gw1t.t(), gb1, gw2t.t(), gb2, None, None


def pair_update(norm: nn.LayerNorm, mlp: nn.Sequential, e: torch.Tensor, src: torch.Tensor, dst: torch.Tensor,
                p_src: torch.Tensor, p_dst: torch.Tensor, residual: bool) -> torch.Tensor:
    """`[e +] mlp([h_src, h_dst, norm(e)])` per edge, fused; (p_src, p_dst) = `stream.node_terms(mlp[0], h, 2)`."""
    d = e.shape[1]
    first, last = mlp[0], mlp[-1]
    return _Pair.apply(e, src.contiguous(), dst.contiguous(), p_src, p_dst, norm.weight, norm.bias,
                       first.weight[:, 2 * d : 3 * d], first.bias, last.weight, last.bias, norm.eps, residual)


class _Messages(torch.autograd.Function):
    @staticmethod
    def forward(ctx, e, src, dst, p_a, p_b, ln_w, ln_b, wa1, ba1, wa2, ba2, wb1, bb1, wb2, bb2, eps):
        e, p_a, p_b = e.contiguous(), p_a.contiguous(), p_b.contiguous()
        n, o = p_a.shape[0], wa2.shape[0]
        ints = _ints(e, n, wa1, wa2, False)
        aggs = _aggregates(e, n, o) + _aggregates(e, n, o)
        _call(library().ws_gmn_msg_fwd, ints, eps,
              [e, src, dst, p_a, p_b, ln_w.contiguous(), ln_b.contiguous(), *_weights(wa1, ba1, wa2, ba2),
               *_weights(wb1, bb1, wb2, bb2), *aggs])
        ctx.save_for_backward(e, src, dst, p_a, p_b, ln_w, ln_b, wa1, ba1, wa2, ba2, wb1, bb1, wb2, bb2, *aggs)
        ctx.eps, ctx.ints = eps, ints
        ctx.mark_non_differentiable(aggs[3], aggs[7])
        return tuple(aggs)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        e, src, dst, p_a, p_b, ln_w, ln_b, wa1, ba1, wa2, ba2, wb1, bb1, wb2, bb2, *aggs = ctx.saved_tensors
        n, o = p_a.shape[0], wa2.shape[0]
        upstream = [e.new_zeros(n, o) if g is None else g.contiguous() for i, g in enumerate(grads) if i % 4 != 3]
        out = [torch.empty_like(e), torch.zeros_like(p_a), torch.zeros_like(p_b), torch.zeros_like(ln_w),
               torch.zeros_like(ln_b)]
        for w1, b1, w2, b2 in ((wa1, ba1, wa2, ba2), (wb1, bb1, wb2, bb2)):
            out += [w1.new_zeros(w1.shape[1], w1.shape[0]), torch.zeros_like(b1),
                    w2.new_zeros(w2.shape[1], w2.shape[0]), torch.zeros_like(b2)]
        _call(library().ws_gmn_msg_bwd, ctx.ints, ctx.eps,
              [e, src, dst, p_a, p_b, ln_w.contiguous(), ln_b.contiguous(), *_weights(wa1, ba1, wa2, ba2),
               *_weights(wb1, bb1, wb2, bb2), *aggs, *upstream, *out])
        ge, gpa, gpb, gw, gb, gwa1, gba1, gwa2, gba2, gwb1, gbb1, gwb2, gbb2 = out
        return (ge, None, None, gpa, gpb, gw, gb, gwa1.t(), gba1, gwa2.t(), gba2, gwb1.t(), gbb1, gwb2.t(), gbb2,
                None)


def messages(norm: nn.LayerNorm, msg_in: nn.Sequential, msg_out: nn.Sequential, e: torch.Tensor,
             src: torch.Tensor, dst: torch.Tensor, p_in: torch.Tensor, p_out: torch.Tensor
             ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The partial aggregates (`mpnn.partial_aggregates`: "sum", "sq", "max") of `msg_in([h_src, norm(e)])`
    at dst and of `msg_out([h_dst, norm(e)])` at src, fused; p_in, p_out the node terms of their first layers."""
    d = e.shape[1]
    weights = []
    for m in (msg_in, msg_out):
        weights += [m[0].weight[:, d : 2 * d], m[0].bias, m[-1].weight, m[-1].bias]
    aggs = _Messages.apply(e, src.contiguous(), dst.contiguous(), p_in, p_out, norm.weight, norm.bias, *weights,
                           norm.eps)
    names = ("sum", "sq", "max")
    return dict(zip(names, aggs[:3])), dict(zip(names, aggs[4:7]))


def _aggregates(x: torch.Tensor, n: int, d: int) -> list[torch.Tensor]:
    """Empty partial aggregates (n, d): sum, squares, maximum (finfo.min), count of the maximum."""
    return [x.new_zeros(n, d), x.new_zeros(n, d), x.new_full((n, d), torch.finfo(x.dtype).min), x.new_zeros(n, d)]


class _Pool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, e, index, n, ln_w, ln_b, eps):
        e = e.contiguous()
        ints = [int(e.dtype == torch.float64), e.shape[0], n, e.shape[1], 0, 0, 0, torch.get_num_threads()]
        aggs = _aggregates(e, n, e.shape[1])
        _call(library().ws_gmn_pool_fwd, ints, eps, [e, index, ln_w.contiguous(), ln_b.contiguous(), *aggs])
        ctx.save_for_backward(e, index, ln_w, ln_b, *aggs)
        ctx.eps, ctx.ints = eps, ints
        ctx.mark_non_differentiable(aggs[3])
        return tuple(aggs)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        e, index, ln_w, ln_b, *aggs = ctx.saved_tensors
        upstream = [torch.zeros_like(aggs[0]) if g is None else g.contiguous() for g in grads[:3]]
        out = [torch.empty_like(e), torch.zeros_like(ln_w), torch.zeros_like(ln_b)]
        _call(library().ws_gmn_pool_bwd, ctx.ints, ctx.eps,
              [e, index, ln_w.contiguous(), ln_b.contiguous(), *aggs, *upstream, *out])
        return out[0], None, None, out[1], out[2], None


def pool(norm: nn.LayerNorm, e: torch.Tensor, index: torch.Tensor, n: int) -> dict[str, torch.Tensor]:
    """Partial pools ("sum", "max", as `heads._partial_pools`) of `norm(e)` (E, d) at index (E,) into n rows, fused."""
    aggs = _Pool.apply(e, index.contiguous(), n, norm.weight, norm.bias, norm.eps)
    return {"sum": aggs[0], "max": aggs[2]}


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, e, src, dst, q, k, v, ln_w, ln_b, w, eps, heads):
        e, q, k, v = e.contiguous(), q.contiguous(), k.contiguous(), v.contiguous()
        n, d = q.shape
        ints = [int(e.dtype == torch.float64), e.shape[0], n, d, heads, torch.get_num_threads()]
        reals = [eps, 1.0 / math.sqrt(d // heads)]
        w = w.contiguous()
        o, m, z = q.new_zeros(n, d), q.new_full((n, heads), torch.finfo(q.dtype).min), q.new_zeros(n, heads)
        _call(library().ws_gmn_attn_fwd, ints, reals,
              [e, src, dst, q, k, v, ln_w.contiguous(), ln_b.contiguous(), w.t().contiguous(), w, o, m, z])
        ctx.save_for_backward(e, src, dst, q, k, v, ln_w, ln_b, w, o, m, z)
        ctx.ints, ctx.reals = ints, reals
        return o

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        e, src, dst, q, k, v, ln_w, ln_b, w, o, m, z = ctx.saved_tensors
        grads = [torch.empty_like(e), torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v),
                 torch.zeros_like(ln_w), torch.zeros_like(ln_b), w.new_zeros(w.shape[1], w.shape[0])]
        _call(library().ws_gmn_attn_bwd, ctx.ints, ctx.reals,
              [e, src, dst, q, k, v, ln_w.contiguous(), ln_b.contiguous(), w.t().contiguous(), w, o, m, z,
               grad.contiguous(), *grads])
        ge, gq, gk, gv, gw, gb, gwt = grads
        return ge, None, None, gq, gk, gv, gw, gb, gwt.t(), None, None


def attention(norm: nn.LayerNorm, edge_qkv: nn.ModuleList, heads: int, e: torch.Tensor, src: torch.Tensor,
              dst: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """`RelationalTransformerLayer.attend` fused: Σ_s a_rs v_rs per receiver (N, hidden), from the node
    projections q, k, v (N, hidden) and the edge projections `edge_qkv` (forward, backward) of `norm(e)`."""
    w = torch.cat([edge_qkv[0].weight, edge_qkv[1].weight])
    return _Attention.apply(e, src.contiguous(), dst.contiguous(), q, k, v, norm.weight, norm.bias, w, norm.eps,
                            heads)


class _Encode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, classes, val, off, cls, rms, angular, buckets, *params):
        classes, val, rms = classes.contiguous(), val.contiguous(), rms.contiguous()
        weights = [(w.t().contiguous(), b.contiguous()) for w, b in zip(params[::2], params[1::2])]
        ints = [int(classes.dtype == torch.float64), cls.shape[0], classes.shape[0], classes.shape[1],
                torch.get_num_threads(), len(buckets)]
        tensors = []
        for (ids, freqs), (wt, b) in zip(buckets, weights):
            ints += [freqs.shape[1], freqs.shape[0], ids.shape[0]]
            tensors += [ids, freqs, wt, b]
        out = classes.new_empty(cls.shape[0], classes.shape[1])
        _call(library().ws_gmn_enc_fwd, ints, angular, [val, off, cls, rms, classes, out, *tensors])
        ctx.ints, ctx.angular, ctx.tensors, ctx.inputs = ints, angular, tensors, (val, off, cls, rms)
        ctx.shapes = [(w.shape, b.shape) for w, b in weights]
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        val, off, cls, rms = ctx.inputs
        gclasses = grad.new_zeros(ctx.ints[2], ctx.ints[3])
        gw = [t for wt, b in ctx.shapes for t in (grad.new_zeros(wt), grad.new_zeros(b))]
        _call(library().ws_gmn_enc_bwd, ctx.ints, ctx.angular,
              [val, off, cls, rms, grad.contiguous(), gclasses, *ctx.tensors, *gw])
        params = [g.t() if i % 2 == 0 else g for i, g in enumerate(gw)]
        return (gclasses, None, None, None, None, None, None, *params)


def encode_supported(encoder: nn.Module, values: torch.Tensor) -> bool:
    """Whether the fused kernel serves the edge encoder `encoder` on the batch's values (the module
    docstring's conditions; values that need a gradient take the torch path)."""
    if not (getattr(encoder, "native", False) and os.environ.get(ENV_VAR, "1") != "0") or values.requires_grad:
        return False
    dtype = encoder.shape.weight.dtype
    if values.device.type != "cpu" or dtype not in (torch.float32, torch.float64):
        return False
    if encoder.hidden % (TILE_BYTES // torch.empty((), dtype=dtype).element_size()):
        return False
    if any(p.dtype != dtype or p.device.type != "cpu" for p in encoder.parameters()):
        return False
    return library() is not None


def encode(encoder: nn.Module, classes: torch.Tensor, values: torch.Tensor, edge_off: torch.Tensor,
           edge_class: torch.Tensor, rms: torch.Tensor, buckets: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
    """`EdgeEncoder.forward` after its class table, fused: per edge `classes[edge_class]` plus, for the
    (width, edge ids) buckets, the projected Fourier features of the edge's values divided by `rms`
    of its class (E, hidden)."""
    fourier = [encoder.fourier[str(w)] for w, _ in buckets]
    params = [t for w, _ in buckets for t in (encoder.project[str(w)].weight, encoder.project[str(w)].bias)]
    inputs = [(ids.contiguous(), f.freqs.to(classes.dtype).contiguous()) for (_, ids), f in zip(buckets, fourier)]
    return _Encode.apply(classes, values.to(classes.dtype), edge_off.contiguous(), edge_class.contiguous(),
                         rms.to(classes.dtype), [float(f.angular) for f in fourier], inputs, *params)


def class_rms(g) -> torch.Tensor | None:
    """`EdgeEncoder.class_rms(g)` with the per-class sums of squares fused (one pass over the values,
    in their dtype), or None where the values are not CPU float32/float64 (the caller's torch path)."""
    val = g.edge_val
    if val.device.type != "cpu" or val.dtype not in (torch.float32, torch.float64) or library() is None:
        return None
    c = g.class_width.shape[0]
    sq, count = val.new_zeros(c), val.new_zeros(c)
    ints = [int(val.dtype == torch.float64), g.edge_class.shape[0], c, torch.get_num_threads()]
    _call(library().ws_gmn_class_squares, ints, 0.0,
          [val.detach().contiguous(), g.edge_off.contiguous(), g.edge_width.contiguous(), g.edge_class.contiguous(),
           g.class_width.contiguous(), sq, count])
    return torch.sqrt(sq / count.clamp(min=1) + 1e-12) * (count > 0) + (count == 0)
