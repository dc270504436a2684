"""Parameter-graph benchmark: the batch's graph view vs one Data per network + Batch.from_data_list.

Part 1: 256 SIREN INRs (2-32-32-1), stacked as a zoo stores them. Ours: the graph view
`WeightSpaceBatch.from_stacked(spec, stacked).graph(structure)` (tensor ops; the structure
is built once per architecture and its time is included). Baselines, in the same run: (a) per network
`build_graph` + `to_pyg`, then `Batch.from_data_list` (structure rebuilt each time);
(b) the same with the structure cached, so only the per-network Data and the
collate loop remain (the stricter baseline, used for `speedup`). Both batches are
checked equal before timing counts.

Part 2: graph construction time and memory (tensor bytes) for a ResNet-18-sized
network (HF ResNet, basic blocks, [64, 128, 256, 512] x [2, 2, 2, 2]), with node
and edge counts.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings

import torch
from torch_geometric.data import Batch

from weightspace.examples import siren
from weightspace.graph import build_graph, from_parsed, graph_structure
from weightspace.graph.pyg import to_pyg
from weightspace.nn import WeightSpaceBatch
from weightspace.nn.gmn import GraphInputs
from weightspace.nn.gmn.inputs import graph_inputs
from weightspace.parser import parse_model


def _best(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def siren_batch(n: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = siren((2, 32, 32, 1))
    inputs = (torch.rand(16, 2),)
    parsed = parse_model(model, inputs)
    spec, roles = parsed.spec, parsed.roles
    sd = model.state_dict()
    stacked = {k: v + 0.01 * torch.randn(n, *v.shape) for k, v in sd.items()}
    singles = [{k: v[i] for k, v in stacked.items()} for i in range(n)]
    dtypes = {k: v.dtype for k, v in sd.items()}

    def fast():
        return WeightSpaceBatch.from_stacked(spec, stacked).graph(graph_structure(spec, dtypes, roles))

    def rebuild_each():
        return Batch.from_data_list([to_pyg(build_graph(spec, s, roles)) for s in singles])

    structure = graph_structure(spec, dtypes, roles)

    def cached_structure():
        return Batch.from_data_list([to_pyg(build_graph(spec, s, roles, structure=structure)) for s in singles])

    t_fast, b_fast = _best(fast, repeats)
    t_fast_cached, _ = _best(lambda: WeightSpaceBatch.from_stacked(spec, stacked).graph(structure), repeats)
    t_rebuild, _ = _best(rebuild_each, max(1, repeats // 2))
    t_cached, b_slow = _best(cached_structure, repeats)
    g_slow = graph_inputs(b_slow)
    equal = all(
        torch.equal(getattr(b_fast, k), getattr(g_slow, k))
        for k in GraphInputs.__dataclass_fields__ if isinstance(getattr(g_slow, k), torch.Tensor)
    )
    print(f"SIREN 2-32-32-1 x {n}: {b_fast.num_nodes} nodes, {b_fast.num_edges} edges; batches equal: {equal}")
    print(f"  graph view (incl. structure build)     {t_fast * 1e3:8.2f} ms")
    print(f"  graph view (structure cached)          {t_fast_cached * 1e3:8.2f} ms")
    print(f"  per-network Data + from_data_list      {t_cached * 1e3:8.2f} ms  ({t_cached / t_fast:.1f}x)")
    print(f"  ... rebuilding the structure each time {t_rebuild * 1e3:8.2f} ms  ({t_rebuild / t_fast:.1f}x)")
    return {
        "networks": n, "equal": equal, "fast_s": t_fast, "fast_cached_structure_s": t_fast_cached,
        "baseline_s": t_cached, "baseline_rebuild_s": t_rebuild,
        "speedup": t_cached / t_fast, "speedup_vs_rebuild": t_rebuild / t_fast,
    }


def _resnet18():
    from transformers import ResNetConfig, ResNetForImageClassification

    cfg = ResNetConfig(num_channels=3, embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2],
                       layer_type="basic", hidden_act="relu", num_labels=1000)
    model = ResNetForImageClassification(cfg).eval()

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(pixel_values=x).logits

    return Logits().eval(), (torch.randn(1, 3, 32, 32),)


def resnet18(repeats: int) -> dict:
    model, inputs = _resnet18()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        parsed = parse_model(model, inputs, verify=False)
        t_parse = time.perf_counter() - t
    sd = model.state_dict()
    t_build, graph = _best(lambda: from_parsed(parsed, sd), repeats)
    st = graph.structure
    tensors = [st.node_type, st.node_layer, st.node_pos, st.edge_index, st.edge_type, st.edge_layer,
               st.edge_width, st.edge_off, st.edge_shape]
    structure_bytes = sum(t.numel() * t.element_size() for t in tensors)
    value_bytes = graph.values.numel() * graph.values.element_size()
    weight_bytes = sum(t.numel() * t.element_size() for t in sd.values())
    data = to_pyg(graph)
    data_bytes = sum(t.numel() * t.element_size() for t in data.values() if isinstance(t, torch.Tensor))
    print(f"ResNet-18 ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters): "
          f"{graph.num_nodes:,} nodes, {graph.num_edges:,} edges, {graph.values.numel():,} values")
    print(f"  parse (one trace, no verification) {t_parse:.2f}s, build_graph {t_build:.3f}s")
    print(f"  structure {structure_bytes / 2**20:.1f} MiB + values {value_bytes / 2**20:.1f} MiB "
          f"(state dict {weight_bytes / 2**20:.1f} MiB); PyG Data {data_bytes / 2**20:.1f} MiB")
    return {
        "nodes": graph.num_nodes, "edges": graph.num_edges, "values": graph.values.numel(),
        "build_s": t_build, "parse_s": t_parse,
        "structure_bytes": structure_bytes, "value_bytes": value_bytes, "state_dict_bytes": weight_bytes, "pyg_data_bytes": data_bytes,
    }


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--networks", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-resnet", action="store_true")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads for both paths (1: steadier on a shared machine)")


def main(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    row = siren_batch(args.networks, args.repeats)
    big = None if args.skip_resnet else resnet18(max(1, args.repeats - 1))
    result = {
        "name": "graph",
        "baseline": "one Data per network (structure cached) + Batch.from_data_list, same run",
        "speedup": row["speedup"],
        "target": 10.0,
        "met": row["speedup"] >= 10.0 and row["equal"],
        "speedup_vs_rebuilding_each_graph": row["speedup_vs_rebuild"],
        "threads": args.threads,
        "siren": row,
        "resnet18": big,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    import sys

    from tasks.jobs import run_module

    sys.exit(run_module(sys.modules[__name__]))
