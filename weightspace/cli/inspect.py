"""`weightspace inspect`: the symmetry spec of a checkpoint or a module, as a table."""
from __future__ import annotations

import argparse
import importlib
import warnings
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..errors import ConfigError
from ..spec import WeightSpec


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="print the permutation-symmetry spec of a checkpoint or module")
    p.add_argument("target", nargs="?", help="checkpoint file/folder, or MODULE:FACTORY returning (model, example_inputs)")
    p.add_argument("--example", help="a bundled example: 'siren-file' (the bundled checkpoint) or one of weightspace.examples.NAMES")
    p.add_argument("--activation", help="for checkpoints: the hidden activation (sin, tanh, relu) to record sign/scale symmetries")
    p.add_argument("--json", type=Path, help="write the spec as JSON to this file")
    p.add_argument("--strict", action="store_true", help="fail on ops without a symmetry rule instead of freezing their axes")
    p.add_argument("--graph", action="store_true", help="also print the parameter graph's node/edge counts per type")
    p.add_argument("--graph-png", type=Path, metavar="PATH", help="save a picture of the parameter graph (small networks)")
    p.set_defaults(run=run)


def _from_factory(target: str, strict: bool) -> WeightSpec:
    from ..parser import parse

    module_name, _, attr = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attr or "build")
    built = factory()
    if not (isinstance(built, tuple) and len(built) == 2):
        raise ConfigError(f"{target} must return (model, example_inputs), got {type(built).__name__}")
    model, inputs = built
    return parse(model, inputs if isinstance(inputs, tuple) else (inputs,), strict=strict)


def _from_checkpoint(path: str, activation: str | None) -> tuple[WeightSpec, str]:
    from ..io import load, load_spec
    from ..parser import infer_spec

    stored = load_spec(path)
    if stored is not None:
        return stored, "spec stored in the file's metadata"
    return infer_spec(load(path), activation=activation), "inferred from names and shapes"


def resolve(args) -> tuple[WeightSpec, str]:
    """The spec the arguments point at, and a line saying where it came from."""
    if args.example:
        from .. import examples

        if args.example == "siren-file":
            spec, how = _from_checkpoint(str(examples.BUNDLED), args.activation or "sin")
            return spec, f"{examples.BUNDLED.name}: {how}"
        model, inputs = examples.build(args.example)
        from ..parser import parse

        return parse(model, inputs, strict=args.strict), f"example {args.example!r}: traced with torch.export"
    if not args.target:
        raise ConfigError("give a checkpoint path, MODULE:FACTORY, or --example NAME")
    if ":" in args.target and not Path(args.target).exists():
        return _from_factory(args.target, args.strict), f"{args.target}: traced with torch.export"
    spec, how = _from_checkpoint(args.target, args.activation)
    return spec, f"{args.target}: {how}"


def render(spec: WeightSpec, origin: str, console: Console) -> None:
    console.print(f"[bold]{origin}[/bold]")
    console.print(f"{len(spec.entries)} entries, {spec.num_parameters():,} parameters, {len(spec.groups)} groups, "
                  f"provenance {spec.provenance}, {'verified' if spec.verified else 'not verified'}")
    table = Table(title="permutation groups")
    for col in ("group", "size", "kind", "members", "extra"):
        table.add_column(col)
    for name, g in spec.groups.items():
        members = spec.members(name)
        shown = ", ".join(f"{m.key}[{m.axis}]" for m in members[:4])
        more = f" … (+{len(members) - 4})" if len(members) > 4 else ""
        table.add_row(name, str(g.size), g.kind, shown + more, ", ".join(g.extra) or "-")
    console.print(table)
    if spec.frozen:
        reasons = Counter(f.reason for f in spec.frozen)
        frozen = Table(title="fixed axes by reason")
        frozen.add_column("reason")
        frozen.add_column("axes", justify="right")
        frozen.add_column("e.g.")
        for reason, count in reasons.most_common():
            first = next(f for f in spec.frozen if f.reason == reason)
            frozen.add_row(reason, str(count), f"{first.key}[{first.axis}]")
        console.print(frozen)
    for note in spec.notes:
        console.print(f"note: {note}")


def _model(args):
    """(model, example_inputs) behind the arguments, or None for a checkpoint."""
    if args.example and args.example != "siren-file":
        from .. import examples

        return examples.build(args.example)
    if args.target and ":" in args.target and not Path(args.target).exists():
        module_name, _, attr = args.target.partition(":")
        return getattr(importlib.import_module(module_name), attr or "build")()
    return None


def graph_of(args, spec: WeightSpec):
    """The parameter graph: roles from a trace for modules, conventions for checkpoints."""
    from ..graph import build_graph, trace_roles

    built = _model(args)
    if built is not None:
        model, inputs = built
        return build_graph(spec, model.state_dict(), trace_roles(model, inputs if isinstance(inputs, tuple) else (inputs,)))
    from .. import examples
    from ..io import load

    path = examples.BUNDLED if args.example == "siren-file" else args.target
    return build_graph(spec, load(path))


def render_graph(graph, console: Console) -> None:
    from ..graph import EDGE_TYPES, NODE_TYPES

    st = graph.structure
    console.print(f"parameter graph: {st.num_nodes:,} nodes, {st.num_edges:,} edges, {st.num_values:,} values")
    for title, types, names in (("nodes", st.node_type, NODE_TYPES), ("edges", st.edge_type, EDGE_TYPES)):
        table = Table(title=f"{title} per type")
        table.add_column("type")
        table.add_column("count", justify="right")
        for t, n in sorted(Counter(types.tolist()).items()):
            table.add_row(names[t], f"{n:,}")
        console.print(table)


def run(args: argparse.Namespace) -> int:
    console = Console()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        spec, origin = resolve(args)
    render(spec, origin, console)
    if args.json:
        from ..io.save import write_atomic

        text = spec.to_json(indent=2)
        write_atomic(args.json, lambda tmp: tmp.write_text(text))
        console.print(f"spec written to {args.json}")
    if args.graph or args.graph_png:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            graph = graph_of(args, spec)
        render_graph(graph, console)
        if args.graph_png:
            from ..graph.draw import draw

            draw(graph, args.graph_png, title=origin)
            console.print(f"graph picture written to {args.graph_png}")
    return 0
