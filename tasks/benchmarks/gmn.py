"""Graph-metanetwork benchmark: sparse neighbourhood attention vs the dense all-pairs layout.

Part 1: forward+backward time per batch of 256 SIREN 2-32-32-1 parameter graphs
(`WeightSpaceBatch.graph`) for our sparse relational transformer (`GMNClassifier(kind="transformer")`)
and edge-updating MPNN, against a dense relational transformer in the N×N layout of
the reference implementation (Kofinas et al., ICLR 2024): node tensor (B, N, d), edge
tensor (B, N, N, d), attention over every node pair and edge updates on every pair.
Same encoders, hidden size, heads, layers and readout; timed in the same run.

Part 2: peak memory (max RSS increase of a fresh process) of one forward+backward of
our models on a ResNet-18-sized graph (HF ResNet, [64, 128, 256, 512] x [2, 2, 2, 2])
at batch 1; the dense layout's edge tensor alone is given for scale (too large to run).

Threads: both models run with torch.set_num_threads(--threads) (default 1: on a
shared 2-core machine many small ops are far steadier single-threaded).
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
import warnings

import torch
from torch import nn

from weightspace.examples import siren
from weightspace.graph import graph_structure
from weightspace.nn import WeightSpaceBatch
from weightspace.nn.gmn import GMNClassifier, GraphInputs, edge_widths
from weightspace.nn.gmn.encoders import EdgeEncoder, NodeEncoder
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


def _time(model, batch, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        t = time.perf_counter()
        model(batch).square().sum().backward()
        best = min(best, time.perf_counter() - t)
    return best


def siren_timing(networks: int, hidden: int, layers: int, heads: int, repeats: int) -> dict:
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
    n, e = structure.num_nodes, structure.num_edges
    t_sparse, t_mpnn, t_dense = (_time(m, batch, repeats) for m in (sparse, mpnn, dense))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    print(f"SIREN 2-32-32-1 x {networks}: {n} nodes and {e} edges per graph ({n * n} dense pairs); "
          f"hidden {hidden}, {layers} layers, {heads} heads")
    print(f"  sparse relational transformer {t_sparse * 1e3:9.1f} ms  ({count(sparse):,} parameters)")
    print(f"  sparse edge-updating MPNN     {t_mpnn * 1e3:9.1f} ms  ({count(mpnn):,} parameters)")
    print(f"  dense all-pairs transformer   {t_dense * 1e3:9.1f} ms  ({count(dense):,} parameters)")
    print(f"  speedup sparse transformer vs dense: {t_dense / t_sparse:.2f}x; MPNN vs dense: {t_dense / t_mpnn:.2f}x")
    return {"networks": networks, "nodes": n, "edges": e, "sparse_transformer_s": t_sparse, "mpnn_s": t_mpnn,
            "dense_s": t_dense, "speedup": t_dense / t_sparse, "speedup_mpnn": t_dense / t_mpnn}


def _resnet18_structure():
    from tasks.benchmarks.graph import _resnet18

    model, inputs = _resnet18()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = parse_model(model, inputs, verify=False)
    sd = model.state_dict()
    structure = graph_structure(parsed.spec, {k: v.dtype for k, v in sd.items()}, parsed.roles)
    return structure, {k: v[None] for k, v in sd.items()}


def memory_child(kind: str, hidden: int, layers: int, heads: int) -> None:
    """In a fresh process: max-RSS increase of one forward+backward on the ResNet-18 graph."""
    structure, stacked = _resnet18_structure()
    batch = WeightSpaceBatch.from_stacked(structure.spec, stacked).graph(structure)
    model = GMNClassifier(10, hidden, layers, kind, heads=heads, edge_widths=edge_widths(structure))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    model(batch).square().sum().backward()
    seconds = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"kind": kind, "peak_extra_bytes": (after - before) * 1024, "rss_bytes": after * 1024,
                      "seconds": seconds, "nodes": structure.num_nodes, "edges": structure.num_edges,
                      "values": structure.num_values}))


def resnet_memory(hidden: int, layers: int, heads: int, threads: int) -> dict:
    rows = {}
    for kind in ("transformer", "mpnn"):
        cmd = [sys.executable, "-m", "tasks.benchmarks.gmn", "--memory-child", kind, "--hidden", str(hidden),
               "--layers", str(layers), "--heads", str(heads), "--threads", str(threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        rows[kind] = json.loads(out)
    r = rows["transformer"]
    dense_edge_bytes = r["nodes"] ** 2 * hidden * 4
    print(f"ResNet-18 graph: {r['nodes']:,} nodes, {r['edges']:,} edges, {r['values']:,} values; batch 1, "
          f"hidden {hidden}, {layers} layers, forward+backward")
    for kind, row in rows.items():
        print(f"  sparse {kind:<11} peak +{row['peak_extra_bytes'] / 2**30:6.2f} GiB over the loaded graph "
              f"(process {row['rss_bytes'] / 2**30:.2f} GiB), {row['seconds']:.1f} s")
    print(f"  dense N×N layout: one float32 edge tensor alone is {dense_edge_bytes / 2**30:.1f} GiB "
          f"(the layer keeps several per pair for backward); not run")
    return {"sparse": rows, "dense_edge_tensor_bytes": dense_edge_bytes}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--networks", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads for every model")
    ap.add_argument("--skip-resnet", action="store_true")
    ap.add_argument("--memory-child", choices=("transformer", "mpnn"), help=argparse.SUPPRESS)


def main(args: argparse.Namespace) -> dict | None:
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child, args.hidden, args.layers, args.heads)
        return None
    print(f"torch threads: {torch.get_num_threads()}")
    row = siren_timing(args.networks, args.hidden, args.layers, args.heads, args.repeats)
    memory = None if args.skip_resnet else resnet_memory(args.hidden, args.layers, args.heads, args.threads)
    result = {
        "name": "gmn",
        "baseline": "dense all-pairs relational transformer (N×N layout), same width/heads/layers",
        "speedup": row["speedup"],
        "target": 2.0,
        "threads": args.threads,
        "siren": row,
        "resnet18_memory": memory,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    from tasks.jobs import run_module

    sys.exit(run_module(sys.modules[__name__]))
