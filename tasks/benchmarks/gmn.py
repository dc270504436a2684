"""Graph-metanetwork benchmark: sparse neighbourhood attention vs the dense all-pairs layout.

Part 1: forward+backward time per batch of 256 SIREN 2-32-32-1 parameter graphs
(`WeightSpaceBatch.graph`) for our sparse relational transformer (`GMNClassifier(kind="transformer")`)
and edge-updating MPNN, against a dense relational transformer in the N×N layout of
the reference implementation (Kofinas et al., ICLR 2024): node tensor (B, N, d), edge
tensor (B, N, N, d), attention over every node pair and edge updates on every pair.
Same encoders, hidden size, heads, layers and readout; timed in the same run.

Both sparse models are also timed on today's path (`reference_classifier`: every edge at
once, concatenated MLP inputs, PyG scatter/softmax) in the same process: the speedup of
the streamed layers (`weightspace.nn.gmn.stream`) over it.

Part 2: time and peak memory of one forward+backward of our models on a ResNet-18 graph
(HF ResNet, [64, 128, 256, 512] x [2, 2, 2, 2], random weights; parsed with the library's
parser, graph from `weightspace.graph`) at batch 1, each in a fresh process; peak memory is
the process's resident-set high-water mark (VmHWM, reset before the step) over its RSS
before it. The children run with MALLOC_TOP_PAD_=0 (unless --glibc-dynamic): any fixed
malloc setting turns off glibc's dynamic mmap/trim thresholds, which otherwise keep the
freed chunk buffers of the edge stream resident (the MPNN's live peak ~1 GiB read as
+5 GiB of RSS); the JSON line records the setting. The dense layout's edge tensor alone is given for scale (too large to run).

Threads: the SIREN part runs with torch.set_num_threads(--threads) (default 1: on a
shared 2-core machine many small ops are far steadier single-threaded); its times are the
process's CPU time (best of --repeats + 1), which a shared machine's load inflates far less
than wall time. The ResNet-18 children run once per count in --resnet-threads (default: 1
and every core), recording wall and CPU time; `resnet18_fwd_bwd_s` is the wall time of the
worse kind at the largest count (`resnet18_threads`).

On CPU the edge encoder, the layers, the readout and the edge head run the fused edge kernels
(`weightspace.nn.gmn.native`;
`--no-native` measures the torch path). The line also carries one core's measured float32
matmul rate (a 2048³ product) and memory bandwidth (`c = a + b` on 64 MB tensors), both in
CPU time, and the matmul FLOPs of the edge kernels per forward+backward, whose time at that
rate on the largest thread count is the floor of this design (`resnet18_matmul_floor_s`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import warnings

import torch
from torch import nn
from torch_geometric.utils import scatter, softmax

from weightspace.examples import siren
from weightspace.graph import graph_structure
from weightspace.nn import WeightSpaceBatch
from tasks.benchmarks.lopt import bandwidth_gbs
from weightspace.nn.gmn import GMNClassifier, GraphInputs, edge_widths, native
from weightspace.nn.gmn.encoders import EdgeEncoder, NodeEncoder, sinusoidal
from weightspace.nn.gmn.mlp import mlp
from weightspace.parser import parse_model


class DenseRelationalLayer(nn.Module):
    """Relational-transformer layer over all N×N pairs (the reference layout), edge-conditioned q/k/v."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm_h, self.norm_e = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.edge_qkv = nn.ModuleList([nn.Linear(hidden, 3 * hidden, bias=False) for _ in range(2)])
        self.out = nn.Linear(hidden, hidden)
        self.norm_ffn, self.ffn = nn.LayerNorm(hidden), mlp([hidden, 2 * hidden, hidden])
        self.norm_edge, self.edge = nn.LayerNorm(hidden), mlp([3 * hidden, 2 * hidden, hidden])

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = h.shape
        dh = d // self.heads
        q, k, v = self.qkv(self.norm_h(h)).chunk(3, dim=-1)
        en = self.norm_e(e)  # e[b, r, s]: the edge s -> r; its transpose is the backward direction
        eq, ek, ev = (self.edge_qkv[0](en) + self.edge_qkv[1](en.transpose(1, 2))).chunk(3, dim=-1)
        qs = (q[:, :, None] + eq).view(b, n, n, self.heads, dh)
        ks = (k[:, None, :] + ek).view(b, n, n, self.heads, dh)
        vs = (v[:, None, :] + ev).view(b, n, n, self.heads, dh)
        alpha = torch.softmax((qs * ks).sum(-1) / math.sqrt(dh), dim=2)
        h = h + self.out((alpha[..., None] * vs).sum(2).reshape(b, n, d))
        h = h + self.ffn(self.norm_ffn(h))
        hn = self.norm_edge(h)
        pair = torch.cat([hn[:, None, :].expand(b, n, n, d), hn[:, :, None].expand(b, n, n, d), en], dim=-1)
        return h, e + self.edge(pair)


class DenseRelationalTransformer(nn.Module):
    """Dense baseline classifier for one-architecture batches: same encoders and readout pools."""

    def __init__(self, out: int, hidden: int, layers: int, heads: int, widths):
        super().__init__()
        self.nodes, self.edges = NodeEncoder(hidden), EdgeEncoder(hidden, widths)
        self.layers = nn.ModuleList(DenseRelationalLayer(hidden, heads) for _ in range(layers))
        self.norm_h, self.norm_e = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.readout = mlp([4 * hidden, 2 * hidden, out])

    def forward(self, g: GraphInputs) -> torch.Tensor:
        b, n = g.num_graphs, g.structures[0].num_nodes
        h = self.nodes(g).view(b, n, -1)
        flat = self.edges(g)
        src, dst = g.edge_index
        e = flat.new_zeros(b * n * n, flat.shape[1])
        e = e.index_put((g.node_graph[dst] * n * n + (dst % n) * n + src % n,), flat, accumulate=True)
        e = e.view(b, n, n, -1)
        for layer in self.layers:
            h, e = layer(h, e)
        hn, en = self.norm_h(h), self.norm_e(e).flatten(1, 2)
        return self.readout(torch.cat([hn.mean(1), hn.amax(1), en.mean(1), en.amax(1)], dim=1))


def _reference_aggregate(msg, index, n, aggregators):
    out, mean = [], None
    for name in aggregators:
        if name in ("mean", "std") and mean is None:
            mean = scatter(msg, index, 0, dim_size=n, reduce="mean")
        if name == "mean":
            out.append(mean)
        elif name == "max":
            out.append(scatter(msg, index, 0, dim_size=n, reduce="max"))
        elif name == "sum":
            out.append(scatter(msg, index, 0, dim_size=n, reduce="sum"))
        elif name == "std":
            var = scatter(msg * msg, index, 0, dim_size=n, reduce="mean") - mean * mean
            out.append(torch.sqrt(var.clamp(min=0) + 1e-6) - 1e-3)
    return torch.cat(out, dim=1)


def _reference_mpnn(layer, h, e, edge_index):
    src, dst = edge_index
    n = h.shape[0]
    hn = layer.norm_h(h)
    e = e + layer.edge(torch.cat([hn[src], hn[dst], layer.norm_e(e)], dim=1))
    en = layer.norm_m(e)
    incoming = _reference_aggregate(layer.msg_in(torch.cat([hn[src], en], dim=1)), dst, n, layer.aggregators)
    outgoing = _reference_aggregate(layer.msg_out(torch.cat([hn[dst], en], dim=1)), src, n, layer.aggregators)
    h = h + layer.node(torch.cat([hn, layer.norm_agg(torch.cat([incoming, outgoing], dim=1))], dim=1))
    return h, e


def reference_attend(layer, h, e, edge_index):
    """Today's attention of `RelationalTransformerLayer`, all edges at once (PyG softmax and scatter)."""
    src, dst = edge_index
    n, heads, dh = h.shape[0], layer.heads, layer.hidden // layer.heads
    q, k, v = layer.qkv(layer.norm_h(h)).chunk(3, dim=1)
    en = layer.norm_e(e)
    fq, fk, fv = layer.edge_qkv[0](en).chunk(3, dim=1)
    bq, bk, bv = layer.edge_qkv[1](en).chunk(3, dim=1)
    receiver, sender = torch.cat([dst, src]), torch.cat([src, dst])
    qs = (q[receiver] + torch.cat([fq, bq])).view(-1, heads, dh)
    ks = (k[sender] + torch.cat([fk, bk])).view(-1, heads, dh)
    vs = (v[sender] + torch.cat([fv, bv])).view(-1, heads, dh)
    alpha = layer.dropout(softmax((qs * ks).sum(-1) / math.sqrt(dh), receiver, num_nodes=n))
    return scatter(alpha[..., None] * vs, receiver, 0, dim_size=n, reduce="sum").reshape(n, layer.hidden)


def _reference_transformer(layer, h, e, edge_index):
    src, dst = edge_index
    h = h + layer.out(reference_attend(layer, h, e, edge_index))
    h = h + layer.ffn(layer.norm_ffn(h))
    hn = layer.norm_edge(h)
    return h, e + layer.edge(torch.cat([hn[src], hn[dst], layer.norm_e(e)], dim=1))


def _reference_edges(enc, g):
    dtype = enc.shape.weight.dtype
    rms = enc.class_rms(g).to(dtype)
    classes = (enc.type_embed(g.class_type) + enc.layer(sinusoidal(g.class_layer, enc.hidden).to(dtype))
               + enc.shape(torch.log1p(g.class_shape.to(dtype))) + enc.scale(torch.log(rms)[:, None]))
    out = classes[g.edge_class]
    if not enc.normalize:
        rms = torch.ones_like(rms)
    for w, ids, where in g.width_slices():
        vals = g.edge_val[where].to(dtype) / rms[g.edge_class[ids], None]
        out = out.index_add(0, ids, enc.project[str(w)](enc.fourier[str(w)](vals)))
    return out


def _reference_readout(readout, h, e, g):
    n = g.num_graphs
    parts = [scatter(readout.norm_h(h), g.node_graph, 0, dim_size=n, reduce=p) for p in readout.pools]
    if readout.edges:
        parts += [scatter(readout.norm_e(e), g.edge_graph, 0, dim_size=n, reduce=p) for p in readout.pools]
    return readout.mlp(torch.cat(parts, dim=1))


def reference_trunk(trunk, g):
    """Today's `GraphMetaNetwork` forward (no probes): every edge at once, concatenated MLP inputs,
    PyG scatter/softmax; the baseline of the speedup and the reference of the equality tests."""
    h, e = trunk.nodes(g), _reference_edges(trunk.edges, g)
    step = _reference_mpnn if trunk.kind == "mpnn" else _reference_transformer
    for layer in trunk.layers:
        h, e = step(layer, h, e, g.edge_index)
    return h, e


def reference_classifier(model, g):
    """Today's `GMNClassifier` forward (no probes), as `reference_trunk`."""
    return _reference_readout(model.readout, *reference_trunk(model.trunk, g), g)


def _time(model, batch, repeats: int, forward=None) -> float:
    forward = forward or model
    best = float("inf")
    for _ in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        t = time.process_time()
        forward(batch).square().sum().backward()
        best = min(best, time.process_time() - t)
    return best


def siren_timing(networks: int, hidden: int, layers: int, heads: int, repeats: int, use_native: bool = True) -> dict:
    torch.manual_seed(0)
    model, inputs = siren((2, 32, 32, 1)), (torch.rand(16, 2),)
    parsed = parse_model(model, inputs)
    structure = graph_structure(parsed.spec, {k: v.dtype for k, v in model.state_dict().items()}, parsed.roles)
    stacked = {k: v + 0.01 * torch.randn(networks, *v.shape) for k, v in model.state_dict().items()}
    batch = WeightSpaceBatch.from_stacked(structure.spec, stacked).graph(structure)
    widths = edge_widths(structure)
    sparse = GMNClassifier(10, hidden, layers, "transformer", heads=heads, edge_widths=widths)
    mpnn = GMNClassifier(10, hidden, layers, "mpnn", edge_widths=widths)
    dense = DenseRelationalTransformer(10, hidden, layers, heads, widths)
    for m in (*sparse.modules(), *mpnn.modules()):
        if hasattr(m, "native"):
            m.native = use_native
    n, e = structure.num_nodes, structure.num_edges
    t_sparse, t_mpnn, t_dense = (_time(m, batch, repeats) for m in (sparse, mpnn, dense))
    t_ref_sparse, t_ref_mpnn = (_time(m, batch, repeats, lambda b, m=m: reference_classifier(m, b)) for m in (sparse, mpnn))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    print(f"SIREN 2-32-32-1 x {networks}: {n} nodes and {e} edges per graph ({n * n} dense pairs); "
          f"hidden {hidden}, {layers} layers, {heads} heads")
    print(f"  sparse relational transformer {t_sparse * 1e3:9.1f} ms  ({count(sparse):,} parameters)")
    print(f"  sparse edge-updating MPNN     {t_mpnn * 1e3:9.1f} ms  ({count(mpnn):,} parameters)")
    print(f"  dense all-pairs transformer   {t_dense * 1e3:9.1f} ms  ({count(dense):,} parameters)")
    print(f"  today's path: transformer {t_ref_sparse * 1e3:9.1f} ms, MPNN {t_ref_mpnn * 1e3:9.1f} ms")
    print(f"  speedup sparse transformer vs dense: {t_dense / t_sparse:.2f}x; MPNN vs dense: {t_dense / t_mpnn:.2f}x")
    print(f"  speedup vs today's path: transformer {t_ref_sparse / t_sparse:.2f}x, MPNN {t_ref_mpnn / t_mpnn:.2f}x")
    return {"networks": networks, "nodes": n, "edges": e, "sparse_transformer_s": t_sparse, "mpnn_s": t_mpnn,
            "dense_s": t_dense, "speedup": t_dense / t_sparse, "speedup_mpnn": t_dense / t_mpnn,
            "today_transformer_s": t_ref_sparse, "today_mpnn_s": t_ref_mpnn,
            "speedup_vs_today": t_ref_sparse / t_sparse, "speedup_vs_today_mpnn": t_ref_mpnn / t_mpnn}


def _resnet18_structure():
    from tasks.benchmarks.graph import _resnet18

    model, inputs = _resnet18()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = parse_model(model, inputs, verify=False)
    sd = model.state_dict()
    structure = graph_structure(parsed.spec, {k: v.dtype for k, v in sd.items()}, parsed.roles)
    return structure, {k: v[None] for k, v in sd.items()}


def matmul_gflops(size: int = 2048, reps: int = 3) -> float:
    """Float32 GFLOP/s of one core on a size³ matrix product (one torch thread, CPU time, best of `reps`)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(reps + 1):
        t = time.process_time()
        a @ b
        best = min(best, time.process_time() - t)
    torch.set_num_threads(previous)
    return 2 * size**3 / best / 1e9


def edge_matmul_flops(kind: str, hidden: int, layers: int, edges: int) -> float:
    """Matmul FLOPs of the fused edge kernels in one forward+backward of `GMNClassifier`: each product
    runs 4 times (forward, recomputed in backward, input and weight gradients); per edge and layer the
    MPNN multiplies 6 hidden² maps (edge MLP 2, messages 4), the transformer the 6-hidden² edge q/k/v
    projection plus its 2-hidden-wide edge MLP (4 hidden²)."""
    per_edge = 6 * hidden**2 if kind == "mpnn" else 10 * hidden**2
    return 4 * 2 * per_edge * layers * edges


def _kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(f.read().split(f"{field}:")[1].split()[0])


def memory_child(kind: str, hidden: int, layers: int, heads: int, chunk_size: int | None, use_native: bool) -> None:
    """In a fresh process: time and resident-set peak increase of one forward+backward on the ResNet-18 graph."""
    structure, stacked = _resnet18_structure()
    batch = WeightSpaceBatch.from_stacked(structure.spec, stacked).graph(structure)
    model = GMNClassifier(10, hidden, layers, kind, heads=heads, edge_widths=edge_widths(structure),
                          chunk_size=chunk_size)
    for m in model.modules():
        if hasattr(m, "native"):
            m.native = use_native
    built = use_native and native.library() is not None  # built (or loaded) before the timed step
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    before = _kib("VmRSS")
    t, cpu = time.perf_counter(), time.process_time()
    model(batch).square().sum().backward()
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    peak = _kib("VmHWM")
    print(json.dumps({"kind": kind, "threads": torch.get_num_threads(), "native": built,
                      "peak_extra_bytes": (peak - before) * 1024, "rss_bytes": peak * 1024,
                      "seconds": seconds, "cpu_seconds": cpu, "nodes": structure.num_nodes,
                      "edges": structure.num_edges, "values": structure.num_values, "chunk_size": chunk_size}))


def resnet_memory(hidden: int, layers: int, heads: int, thread_counts: list[int], chunk_size: int | None,
                  glibc_dynamic: bool, use_native: bool) -> dict:
    rows: dict[str, dict] = {}
    env = dict(os.environ)
    if not glibc_dynamic:
        env.setdefault("MALLOC_TOP_PAD_", "0")
    malloc = {k: v for k, v in env.items() if k.startswith("MALLOC_")}
    for threads in thread_counts:
        for kind in ("transformer", "mpnn"):
            cmd = [sys.executable, "-m", "tasks.benchmarks.gmn", "--memory-child", kind, "--hidden", str(hidden),
                   "--layers", str(layers), "--heads", str(heads), "--threads", str(threads)]
            cmd += ["--chunk-size", str(chunk_size)] if chunk_size else []
            cmd += [] if use_native else ["--no-native"]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout.strip()
            rows[f"{kind}@{threads}"] = json.loads(out.splitlines()[-1])
    r = next(iter(rows.values()))
    dense_edge_bytes = r["nodes"] ** 2 * hidden * 4
    top = max(thread_counts)
    rate = matmul_gflops()
    floors = {k: edge_matmul_flops(k, hidden, layers, r["edges"]) for k in ("transformer", "mpnn")}
    print(f"ResNet-18 graph: {r['nodes']:,} nodes, {r['edges']:,} edges, {r['values']:,} values; batch 1, "
          f"hidden {hidden}, {layers} layers, forward+backward; malloc settings {malloc or 'glibc defaults'}")
    for name, row in rows.items():
        print(f"  sparse {name:<13} ({'fused edge kernels' if row['native'] else 'torch path'}) peak "
              f"+{row['peak_extra_bytes'] / 2**30:5.2f} GiB over the loaded graph (process "
              f"{row['rss_bytes'] / 2**30:.2f} GiB), {row['seconds']:.1f} s ({row['cpu_seconds']:.1f} s CPU)")
    for kind, flops in floors.items():
        print(f"  {kind}: edge-kernel matmuls {flops / 1e9:.0f} GFLOP = {flops / rate / 1e9:.1f} s of one core at the "
              f"measured {rate:.1f} GFLOP/s (float32 2048³ product), {flops / rate / top / 1e9:.1f} s on {top}")
    print(f"  dense N×N layout: one float32 edge tensor alone is {dense_edge_bytes / 2**30:.1f} GiB "
          f"(the layer keeps several per pair for backward); not run")
    worst = [row for name, row in rows.items() if name.endswith(f"@{top}")]
    return {"sparse": rows, "dense_edge_tensor_bytes": dense_edge_bytes, "malloc_env": malloc, "threads": top,
            "matmul_gflops_per_core": rate, "edge_matmul_gflop": {k: f / 1e9 for k, f in floors.items()},
            "matmul_floor_s": max(floors.values()) / rate / top / 1e9,
            "fwd_bwd_s": max(row["seconds"] for row in worst),
            "fwd_bwd_cpu_s": max(row["cpu_seconds"] for row in worst),
            "peak_gib": max(row["peak_extra_bytes"] for row in rows.values()) / 2**30}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--networks", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads of the SIREN part")
    ap.add_argument("--resnet-threads", type=int, nargs="+", default=sorted({1, len(os.sched_getaffinity(0))}),
                    help="thread counts of the ResNet-18 runs (default: 1 and every core)")
    ap.add_argument("--no-native", action="store_true", help="the torch path instead of the fused edge kernels")
    ap.add_argument("--skip-resnet", action="store_true")
    ap.add_argument("--chunk-size", type=int, default=None, help="edges per chunk on the ResNet graph (default: auto)")
    ap.add_argument("--glibc-dynamic", action="store_true", help="ResNet children keep glibc's dynamic malloc thresholds")
    ap.add_argument("--memory-child", choices=("transformer", "mpnn"), help=argparse.SUPPRESS)


def main(args: argparse.Namespace) -> dict | None:
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child, args.hidden, args.layers, args.heads, args.chunk_size, not args.no_native)
        return None
    print(f"torch threads: {torch.get_num_threads()}; fused edge kernels: "
          f"{not args.no_native and native.library() is not None}")
    bandwidth, rate = bandwidth_gbs(time.process_time, torch.device("cpu")), matmul_gflops()
    print(f"one core (CPU time): memory bandwidth (c = a + b, 64 MB tensors) {bandwidth:.1f} GB/s, float32 matmul "
          f"(2048³) {rate:.1f} GFLOP/s")
    row = siren_timing(args.networks, args.hidden, args.layers, args.heads, args.repeats, not args.no_native)
    memory = None if args.skip_resnet else resnet_memory(args.hidden, args.layers, args.heads, args.resnet_threads,
                                                         args.chunk_size, args.glibc_dynamic, not args.no_native)
    result = {
        "name": "gmn",
        "baseline": "dense all-pairs relational transformer (N×N layout), same width/heads/layers",
        "speedup": row["speedup"],
        "target": 2.0,
        "threads": args.threads,
        "siren_speedup_vs_today": min(row["speedup_vs_today"], row["speedup_vs_today_mpnn"]),
        "siren_target_vs_today": 2.0,
        "native": not args.no_native and native.library() is not None,
        "bandwidth_gbs": bandwidth,
        "matmul_gflops_per_core": rate,
        "resnet18_fwd_bwd_s": None if memory is None else memory["fwd_bwd_s"],
        "resnet18_fwd_bwd_cpu_s": None if memory is None else memory["fwd_bwd_cpu_s"],
        "resnet18_threads": None if memory is None else memory["threads"],
        "resnet18_matmul_floor_s": None if memory is None else memory["matmul_floor_s"],
        "resnet18_peak_gib": None if memory is None else memory["peak_gib"],
        "resnet18_targets": {"fwd_bwd_s": 10.0, "peak_gib": 2.0},
        "siren": row,
        "resnet18_memory": memory,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    from tasks.jobs import run_module

    sys.exit(run_module(sys.modules[__name__]))
