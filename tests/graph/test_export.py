"""networkx export, pictures and `weightspace inspect --graph`."""
from __future__ import annotations

from collections import Counter


from tests.graph.cases import graph_of
from weightspace.cli.main import main
from weightspace.graph.vocab import EDGE_TYPES
from weightspace.graph.draw import draw
from weightspace.graph.nx import to_networkx


def test_networkx_keeps_every_node_edge_and_value():
    graph, sd = graph_of("transformer_block")
    g = to_networkx(graph)
    assert g.number_of_nodes() == graph.num_nodes and g.number_of_edges() == graph.num_edges
    types = Counter(d["type"] for *_, d in g.edges(data=True))
    assert types == Counter(EDGE_TYPES[t] for t in graph.structure.edge_type.tolist())
    values = sorted(v for *_, d in g.edges(data=True) for v in d["value"])
    assert values == sorted(graph.values.tolist())


def test_draw_writes_a_picture(tmp_path):
    graph, _ = graph_of("cnn_bn")
    path = draw(graph, tmp_path / "g.png")
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


def test_inspect_graph_prints_counts_and_saves_png(tmp_path, capsys):
    png = tmp_path / "mlp.png"
    assert main(["inspect", "--example", "mlp", "--graph", "--graph-png", str(png)]) == 0
    text = capsys.readouterr().out
    assert "parameter graph" in text and "nodes per type" in text and "edges per type" in text
    assert png.exists() and png.stat().st_size > 1000


def test_inspect_graph_on_a_checkpoint(capsys):
    assert main(["inspect", "--example", "siren-file", "--graph"]) == 0
    text = capsys.readouterr().out
    assert "linear" in text and "bias" in text
