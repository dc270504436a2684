"""The fused native forward of `GraphMetaNet` for the optimizer's step (float32, CPU, no gradient).

The graph rule's cost is its per-edge work: the task model's parameter graph has one edge per
weight (about 1M for a 1M-parameter MLP), and at hidden 8 the torch path runs ~30 elementwise,
gather and scatter passes over (E, 8) tensors per layer. `graph_step.cpp` does each stage in
one pass over the edges (`ws_lgraph_layer`: the encoder from the raw feature channels, an
MPNN layer's edge update and both messages with their scatter; `ws_lgraph_head`: the head),
in blocks of 8 edges held in registers; the node-side work (N rows: node encoder, node terms,
node updates) stays in the modules' own torch code. Built on first use with
`weightspace.native.load_library`; without a compiler the net takes its torch path with one
warning. `WEIGHTSPACE_LOPT_NATIVE=0` or `net.native = False` forces the torch path.

Same function as `GraphMetaNet.forward` to float32 rounding (tests/lopt/test_graph_native.py):
sums run in another order, LayerNorm's and SiLU's reciprocals are refined hardware estimates
and exp a polynomial (relative errors < 1e-6).
"""
from __future__ import annotations

import ctypes
import os
import weakref
from functools import lru_cache
from pathlib import Path

import torch

from ..errors import LoptError
from ..graph import GraphStructure
from ..native import load_or_warn
from ..nn.gmn import GraphInputs
from ..nn.gmn.heads import unflatten_values
from ..nn.gmn.stream import node_terms
from .nets import Features

ENV_VAR = "WEIGHTSPACE_LOPT_NATIVE"
SOURCE = Path(__file__).with_name("graph_step.cpp")
AGGREGATORS = ("mean", "max", "std", "sum")


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The built kernel (compiled on the first call of a machine, loaded once per process), or None
    with one `RuntimeWarning` where it cannot be built."""
    lib = load_or_warn("weightspace_lopt_graph", SOURCE, "weightspace.lopt: the graph rule's native kernel")
    if lib is None:
        return None
    for fn in (lib.ws_lgraph_layer, lib.ws_lgraph_head):
        fn.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_double),
                       ctypes.POINTER(ctypes.c_void_p)]
        fn.restype = ctypes.c_int64
    limits = (ctypes.c_int64 * 6)()
    lib.ws_lgraph_limits(limits)
    lib.hidden = tuple(w for w in limits[:5] if w)
    lib.max_raw = limits[5]
    return lib


def _cpu_float(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype == torch.float32


def supported(net, raw: Features) -> bool:
    """Whether `forward` serves `net` on these raw features: no gradient needed, float32 CPU
    tensors and weights, a hidden width the build serves, not switched off, a kernel that builds."""
    if not (getattr(net, "native", False) and os.environ.get(ENV_VAR, "1") != "0"):
        return False
    weights = list(net.parameters())
    if torch.is_grad_enabled() and any(t.requires_grad for t in (*weights, *raw.values())):
        return False
    if not raw or not all(_cpu_float(t) for t in (*weights, *raw.values())):
        return False
    if any(a not in AGGREGATORS for a in net.aggregators):
        return False
    lib = library()
    return lib is not None and net.hidden in lib.hidden and next(iter(raw.values())).shape[0] <= lib.max_raw


def _segments(structure: GraphStructure, g: GraphInputs) -> list[tuple[int, int, int, int, str | None, int]]:
    """Edge ranges of constant class: (begin, end, width, value start, entry key or None for member
    edges, class)."""
    out = []
    end = 0
    for e in structure.entries:
        if e.carried and e.edge_count:
            out.append((e.edge_start, e.edge_start + e.edge_count, e.width, e.value_start, e.key,
                        int(g.edge_class[e.edge_start])))
            end = max(end, e.edge_start + e.edge_count)
    rest = g.edge_class[end:]
    if rest.numel():
        cuts = [0, *((torch.nonzero(rest[1:] != rest[:-1]).flatten() + 1).tolist()), rest.numel()]
        out += [(end + a, end + b, 0, 0, None, int(rest[a])) for a, b in zip(cuts[:-1], cuts[1:])]
    return out


_TABLES: "weakref.WeakKeyDictionary[GraphInputs, tuple]" = weakref.WeakKeyDictionary()


def _tables(structure: GraphStructure, g: GraphInputs) -> tuple:
    """(src, dst, (edges into, out of each node), `_segments`) of a one-graph batch, kept while the
    batch lives (`GraphMetaNet.graph` caches it)."""
    hit = _TABLES.get(g)
    if hit is None:
        src, dst = (t.contiguous() for t in g.edge_index)
        n = g.num_nodes
        hit = (src, dst, (torch.bincount(dst, minlength=n), torch.bincount(src, minlength=n)), _segments(structure, g))
        _TABLES[g] = hit
    return hit


class _Call:
    """Argument lists of one kernel call; keeps the tensors it points to alive."""

    def __init__(self):
        self.ints: list[int] = []
        self.reals: list[float] = []
        self.ptrs: list[int | None] = []
        self.alive: list[torch.Tensor] = []

    def tensor(self, t: torch.Tensor | None) -> None:
        if t is None:
            self.ptrs.append(None)
            return
        t = t.detach().contiguous()
        self.alive.append(t)
        self.ptrs.append(t.data_ptr())

    def mlp(self, seq: torch.nn.Sequential, block: int, hidden: int) -> None:
        """A two-layer MLP's edge block of the first weight, its bias, the second weight and bias."""
        self.tensor(seq[0].weight[:, block * hidden : (block + 1) * hidden])
        self.tensor(seq[0].bias)
        self.tensor(seq[2].weight)
        self.tensor(seq[2].bias)

    def run(self, fn) -> None:
        code = fn((ctypes.c_int64 * len(self.ints))(*self.ints), (ctypes.c_double * len(self.reals))(*self.reals),
                  (ctypes.c_void_p * len(self.ptrs))(*self.ptrs))
        if code:
            raise LoptError(f"the graph rule's native kernel refused hidden width {self.ints[0]}")


def _entry_raw(structure: GraphStructure, key: str, raw: torch.Tensor) -> torch.Tensor:
    """Raw channels (R, numel) of an entry in value order (`tensor.permute(order)` flattened)."""
    order = structure.entry(key).order
    if order != tuple(range(len(order))):
        raw = raw.permute(0, *(1 + i for i in order))
    return raw.reshape(raw.shape[0], -1).contiguous()


def _aggregates(aggregators, hidden: int, n: int) -> dict[str, torch.Tensor]:
    """Zeroed per-node accumulators (H, N) the aggregators need ("max" starts at finfo.min)."""
    out = {}
    if {"mean", "std", "sum"} & set(aggregators):
        out["sum"] = torch.zeros(hidden, n)
    if "std" in aggregators:
        out["sq"] = torch.zeros(hidden, n)
    if "max" in aggregators:
        out["max"] = torch.full((hidden, n), torch.finfo(torch.float32).min)
    return out


@torch.no_grad()
def forward(net, structure: GraphStructure, g: GraphInputs, raw: Features, inv_rms: Features,
            time: Features) -> Features:
    """`net.forward_fused` of one unbatched step (see `supported`): key -> learned output (*shape)."""
    lib = library()
    hidden, n, e_count = net.hidden, g.num_nodes, g.num_edges
    num_raw = next(iter(raw.values())).shape[0]
    src, dst, counts, segments = _tables(structure, g)
    for _, _, w, _, key, _ in segments:
        if key is not None and w not in net.widths:
            raise LoptError(
                f"the task model has edges carrying {w} values (a kernel of that size); this graph "
                f"meta-network reads widths {net.widths} (build it with widths=...)"
            )
    classes = net.edges.classes(g)
    edges = torch.empty(hidden, e_count)
    h = net.nodes(g)
    for index, layer in enumerate(net.trunk):
        call = _Call()
        call.ints += [hidden, num_raw, e_count, n, int(index == 0), len(segments)]
        call.reals += [layer.norm_e.eps, layer.norm_m.eps]
        for begin, end, w, _, _, _ in segments:
            call.ints += [begin, end, w]
        call.tensor(src), call.tensor(dst), call.tensor(edges)
        if index == 0:
            for _, _, w, _, key, cls in segments:
                if key is None:
                    call.tensor(None), call.tensor(None), call.tensor(classes[cls])
                    continue
                project = net.edges.project[str(w)]
                weight = project.weight.reshape(hidden, w, -1)
                folded = (weight[:, :, :num_raw] * inv_rms[key]).reshape(hidden, -1)
                constant = classes[cls] + project.bias + (weight[:, :, num_raw:] @ time[key]).sum(1)
                call.tensor(_entry_raw(structure, key, raw[key])), call.tensor(folded), call.tensor(constant)
        for norm in (layer.norm_e, layer.norm_m):
            call.tensor(norm.weight), call.tensor(norm.bias)
        hn = layer.norm_h(h)
        terms = (*node_terms(layer.edge[0], hn, 2), *node_terms(layer.msg_in[0], hn, 1),
                 *node_terms(layer.msg_out[0], hn, 1))
        for t in terms:
            call.tensor(t.t())
        call.mlp(layer.edge, 2, hidden), call.mlp(layer.msg_in, 1, hidden), call.mlp(layer.msg_out, 1, hidden)
        into, out_of = _aggregates(net.aggregators, hidden, n), _aggregates(net.aggregators, hidden, n)
        for parts in (into, out_of):
            for name in ("sum", "sq", "max"):
                call.ptrs.append(parts[name].data_ptr() if name in parts else None)
        call.run(lib.ws_lgraph_layer)
        h = layer.update_nodes(h, hn, {k: v.t() for k, v in into.items()}, {k: v.t() for k, v in out_of.items()},
                               counts)
    head = net.head
    values = torch.empty(structure.num_values)
    call = _Call()
    carried = [s for s in segments if s[4] is not None]
    call.ints += [hidden, e_count, n, len(carried)]
    for begin, end, w, start, _, _ in carried:
        call.ints += [begin, end, w, start]
    call.reals.append(head.norm_e.eps)
    call.tensor(src), call.tensor(dst), call.tensor(edges)
    call.tensor(head.norm_e.weight), call.tensor(head.norm_e.bias)
    for t in node_terms(head.mlp[0], head.norm_h(h), 2):
        call.tensor(t.t())
    call.mlp(head.mlp, 2, hidden)
    call.ptrs.append(values.data_ptr())
    for _, _, w, _, _, _ in carried:
        call.tensor(head.project[str(w)].weight), call.tensor(head.project[str(w)].bias)
    call.run(lib.ws_lgraph_head)
    return unflatten_values(structure, values)
