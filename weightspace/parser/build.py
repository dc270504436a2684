"""Turn a walked trace into a `WeightSpec`: surviving atoms become named groups."""
from __future__ import annotations

from ..spec import Entry, Factor, FrozenAxis, Group, WeightSpec
from .trace import Trace


def _module(key: str) -> str:
    return key.rsplit(".", 1)[0] if "." in key else ""


def _common_prefix(paths: list[str]) -> str:
    parts = [p.split(".") if p else [] for p in paths]
    out = []
    for items in zip(*parts):
        if len(set(items)) != 1:
            break
        out.append(items[0])
    return ".".join(out)


def _kind_and_name(
    members: list[tuple[str, int]], shapes: dict[str, tuple], buffers: set[str], hints: set[str], sole: set[tuple[str, int]]
) -> tuple[str, str]:
    """Kind and readable name from where the group acts; `sole` = axes it fills alone."""
    producers = [k for k, axis in members if axis == 0 and len(shapes[k]) >= 2 and k not in buffers and (k, 0) in sole]
    biases = [k for k, axis in members if len(shapes[k]) == 1 and k.endswith("bias") and k not in buffers]
    recurrent = len({(k, a) for k, a in members}) > len({k for k, _ in members}) and any(
        len(shapes[k]) == 2 and shapes[k][0] == shapes[k][1] for k, _ in members
    )
    embeds = [k for k, axis in members if axis == 1 and len(shapes[k]) == 2 and "emb" in k.lower()]
    modules = sorted({_module(k) for k in producers + embeds})
    prefix = _common_prefix([_module(k) for k, _ in members])
    if "head" in hints and "head_dim" not in hints:
        return "head", f"{prefix}.heads" if prefix else "heads"
    if "head_dim" in hints and "head" not in hints:
        return "head_dim", f"{prefix}.head_dim" if prefix else "head_dim"
    if "hidden" in hints or recurrent:
        layer = members[0][0].rsplit("_l", 1)
        suffix = f".l{layer[1].split('_')[0]}" if len(layer) == 2 and layer[1][:1].isdigit() else ""
        return "hidden", f"{_module(members[0][0]) or members[0][0]}{suffix}.hidden"
    if len(modules) >= 2 and "sum" in hints:
        return "residual", f"{prefix}.residual" if prefix else "residual"
    kind = "channel" if "channel" in hints else "neuron"
    owner = biases[0] if biases else producers[0] if producers else members[0][0]
    return kind, f"{_module(owner) or owner}.out"


def _layout_hints(raw: dict) -> dict[int, set[str]]:
    """In an axis with several permuted factors, the outer one acts like heads."""
    out: dict[int, set[str]] = {}
    for axes in raw.values():
        for factors in axes:
            permuted = [root for root, _ in factors if root is not None]
            if len(permuted) >= 2:
                out.setdefault(permuted[0], set()).add("head")
                for root in permuted[1:]:
                    out.setdefault(root, set()).add("head_dim")
    return out


def build_spec(tr: Trace, provenance: str = "traced") -> WeightSpec:
    """Groups are the unfixed atom classes that reach a state-dict entry."""
    atoms = tr.ctx.atoms
    shapes = {k: v.shape for k, v in tr.entries.items()}
    members: dict[int, list[tuple[str, int]]] = {}
    raw: dict[str, list[list[tuple[int | None, int]]]] = {}
    frozen: dict[tuple[str, int], str] = {}
    for key, value in tr.entries.items():
        axes = []
        for i, axis in enumerate(value.axes):
            factors: list[tuple[int | None, int]] = []
            for leaf in atoms.leaves(axis):
                n = atoms.size(leaf)
                if n <= 1:
                    continue
                reason = atoms.fixed_reason(leaf)
                if reason is None:
                    members.setdefault(leaf, []).append((key, i))
                    factors.append((leaf, n))
                else:
                    factors.append((None, n))
                    frozen.setdefault((key, i), reason)
            axes.append(factors)
        raw[key] = axes
    layout = _layout_hints(raw)
    names: dict[int, str] = {}
    groups: dict[str, Group] = {}
    for root, where in members.items():
        sole = {(k, i) for k, i in where if len(raw[k][i]) == 1}
        hints = atoms.hints.get(root, set())
        if not hints & {"head", "head_dim", "channel", "hidden"}:
            hints = hints | layout.get(root, set())
        kind, name = _kind_and_name(where, shapes, tr.buffers, hints, sole)
        base, k = name, 2
        while name in groups:
            name, k = f"{base}#{k}", k + 1
        names[root] = name
        groups[name] = Group(name, atoms.size(root), kind)
    entries = {}
    for key, axes in raw.items():
        merged_axes = []
        for factors in axes:
            merged: list[Factor] = []
            for root, n in factors:
                if root is None and merged and merged[-1].group is None:
                    merged[-1] = Factor(None, merged[-1].size * n)
                else:
                    merged.append(Factor(names[root] if root is not None else None, n))
            merged_axes.append(tuple(merged))
        entries[key] = Entry(key, tuple(shapes[key]), tuple(merged_axes), buffer=key in tr.buffers)
    notes = tuple(FrozenAxis(k, i, r) for (k, i), r in frozen.items())
    return WeightSpec(entries, groups, dict(tr.aliases), notes, provenance, False)
