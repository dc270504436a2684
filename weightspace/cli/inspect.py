"""`weightspace inspect`: the symmetry spec of a checkpoint or a module, as a table."""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from ..errors import ConfigError
from ..spec import WeightSpec
from .factory import model_and_inputs, parser_warnings
from .text import safe_text

if TYPE_CHECKING:
    from ..parser import ParsedModel


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


def _from_factory(target: str, strict: bool) -> ParsedModel:
    from ..parser import parse_model

    model, inputs = model_and_inputs(target, "inspect")
    return parse_model(model, inputs, strict=strict)


def _from_checkpoint(path: str, activation: str | None) -> tuple[WeightSpec, str]:
    """The stored spec (checked against the file's tensors), else one inferred from them."""
    from ..io import load, load_spec
    from ..parser import infer_spec

    stored = load_spec(path)
    if stored is not None:
        stored.check(load(path), where=f"{path}: the spec stored in its metadata")
        return stored, "spec stored in the file's metadata"
    return infer_spec(load(path), activation=activation), "inferred from names and shapes"


def _is_factory(target: str) -> bool:
    """Whether `target` is MODULE:FACTORY (dotted identifiers) rather than a path that happens to hold ':'."""
    if Path(target).exists() or ":" not in target:
        return False
    module_name, _, attr = target.partition(":")
    return all(part.isidentifier() for part in module_name.split(".")) and (not attr or attr.isidentifier())


def resolve(args) -> tuple[WeightSpec, str, ParsedModel | None]:
    """(spec, where it came from, the ParsedModel when the target was traced, else None)."""
    if args.example:
        from .. import examples

        if args.example == "siren-file":
            spec, how = _from_checkpoint(str(examples.BUNDLED), args.activation or "sin")
            return spec, f"{examples.BUNDLED.name}: {how}", None
        model, inputs = examples.build(args.example)
        from ..parser import parse_model

        parsed = parse_model(model, inputs, strict=args.strict)
        return parsed.spec, f"example {args.example!r}: traced with torch.export", parsed
    if not args.target:
        raise ConfigError("give a checkpoint path, MODULE:FACTORY, or --example NAME")
    if _is_factory(args.target):
        parsed = _from_factory(args.target, args.strict)
        return parsed.spec, f"{args.target}: traced with torch.export", parsed
    spec, how = _from_checkpoint(args.target, args.activation)
    return spec, f"{args.target}: {how}", None


def render(spec: WeightSpec, origin: str, console: Console) -> None:
    """Print the spec as tables; every name and note from the file goes through `safe_text`."""
    console.print(f"[bold]{safe_text(origin)}[/bold]")
    console.print(f"{len(spec.entries)} entries, {spec.num_parameters():,} parameters, {len(spec.groups)} groups, "
                  f"provenance {safe_text(spec.provenance)}, {'verified' if spec.verified else 'not verified'}")
    table = Table(title="permutation groups")
    for col in ("group", "size", "kind", "members", "extra"):
        table.add_column(col)
    for name, g in spec.groups.items():
        members = spec.members(name)
        shown = ", ".join(f"{m.key}[{m.axis}]" for m in members[:4])
        more = f" … (+{len(members) - 4})" if len(members) > 4 else ""
        table.add_row(safe_text(name), str(g.size), safe_text(g.kind), safe_text(shown + more),
                      safe_text(", ".join(g.extra) or "-"))
    console.print(table)
    if spec.frozen:
        reasons = Counter(f.reason for f in spec.frozen)
        frozen = Table(title="fixed axes by reason")
        frozen.add_column("reason")
        frozen.add_column("axes", justify="right")
        frozen.add_column("e.g.")
        for reason, count in reasons.most_common():
            first = next(f for f in spec.frozen if f.reason == reason)
            frozen.add_row(safe_text(reason), str(count), safe_text(f"{first.key}[{first.axis}]"))
        console.print(frozen)
    for note in spec.notes:
        console.print(f"note: {safe_text(note)}")


def graph_of(args, spec: WeightSpec, parsed: ParsedModel | None):
    """The parameter graph: roles from the parse's trace for modules, conventions for checkpoints."""
    from ..graph import build_graph, from_parsed

    if parsed is not None:
        return from_parsed(parsed)
    from .. import examples
    from ..io import load

    path = examples.BUNDLED if args.example == "siren-file" else args.target
    return build_graph(spec, load(path))


def render_graph(graph, console: Console) -> None:
    from ..graph.vocab import EDGE_TYPES, NODE_TYPES

    st = graph.structure
    console.print(f"parameter graph: {st.num_nodes:,} nodes, {st.num_edges:,} edges, {st.num_values:,} values")
    for title, types, names in (("nodes", st.node_type, NODE_TYPES), ("edges", st.edge_type, EDGE_TYPES)):
        table = Table(title=f"{title} per type")
        table.add_column("type")
        table.add_column("count", justify="right")
        for t, n in sorted(Counter(types.tolist()).items()):
            table.add_row(names[t], f"{n:,}")
        console.print(table)


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse --json / --graph-png paths that name the checkpoint being read (OutputIsInputError)."""
    from ..io.load import checkpoint_files
    from ..io.paths import check_output

    if args.example or not args.target or _is_factory(args.target):
        return
    inputs = [Path(args.target), *checkpoint_files(args.target)]
    for flag, out in (("--json", args.json), ("--graph-png", args.graph_png)):
        if out is not None:
            check_output(out, inputs, f"{flag} file")


def run(args: argparse.Namespace) -> int:
    console = Console()
    _check_outputs(args)
    with parser_warnings(console) as printed:
        spec, origin, parsed = resolve(args)
        printed.update(n for n in spec.notes if isinstance(n, str))
    render(spec, origin, console)
    if args.json:
        from ..io.save import write_atomic

        text = spec.to_json(indent=2)
        write_atomic(args.json, lambda tmp: tmp.write_text(text))
        console.print(f"spec written to {safe_text(args.json)}")
    if args.graph or args.graph_png:
        with parser_warnings(console):
            graph = graph_of(args, spec, parsed)
        render_graph(graph, console)
        if args.graph_png:
            from ..graph.draw import draw

            draw(graph, args.graph_png, title=origin)
            console.print(f"graph picture written to {safe_text(args.graph_png)}")
    return 0
