"""Serialize the permutation an alignment returned, to travel in safetensors metadata."""
from __future__ import annotations

import json

import torch

from ..spec import GroupElement
from ..errors import AlignError

METADATA_KEY = "weightspace.align.permutation"


def element_to_json(g: GroupElement) -> str:
    """{group: [perm...]} (signs/scales under "signs"/"scales" when present)."""
    out = {"perms": {n: p.tolist() for n, p in g.perms.items()}}
    if g.signs:
        out["signs"] = {n: s.tolist() for n, s in g.signs.items()}
    if g.scales:
        out["scales"] = {n: s.tolist() for n, s in g.scales.items()}
    return json.dumps(out)


def element_from_json(text: str) -> GroupElement:
    try:
        d = json.loads(text)
        return GroupElement(
            {n: torch.tensor(p, dtype=torch.long) for n, p in d["perms"].items()},
            {n: torch.tensor(s) for n, s in d.get("signs", {}).items()},
            {n: torch.tensor(s) for n, s in d.get("scales", {}).items()},
        )
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise AlignError(f"not a stored permutation: {type(err).__name__}: {err}") from err
