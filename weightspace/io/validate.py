"""One validation layer for the JSON documents we read from untrusted files.

Spec metadata, sharded-checkpoint indexes, zoo manifests and sidecars, metanetwork
configs and DWSNets splits all arrive from files a user may have downloaded. Each
reader parses them with `parse_json`/`read_json` (bounded size and nesting, every
failure a named error carrying the file) and checks the fields it uses with the
`field_*` helpers, so bad JSON never ends in a raw TypeError, KeyError,
RecursionError or UnicodeDecodeError.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import CheckpointError
from ..spec.weight_spec import MAX_SIZE

ErrorFactory = Callable[[Path, str], Exception]

MAX_JSON_BYTES = 256 << 20
MAX_DEPTH = 64
# Most classes a config or splits file may name (a head for 1e9 classes would allocate terabytes).
MAX_CLASSES = 100_000


def nesting_depth(obj: Any) -> int:
    """How deeply lists and objects nest in a parsed JSON value (iterative, no recursion)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((c, depth + 1) for c in children)
    return deepest


def parse_json(text: str | bytes, where: str | Path, what: str, error: ErrorFactory = CheckpointError) -> Any:
    """Parse untrusted JSON text; `error(where, reason)` on bad encoding, syntax, size or nesting."""
    if len(text) > MAX_JSON_BYTES:
        raise error(Path(where), f"{what} is {len(text)} bytes, more than the {MAX_JSON_BYTES} allowed")
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        value = json.loads(text)
    except UnicodeDecodeError as err:
        raise error(Path(where), f"{what} is not UTF-8 text: {err.reason} at byte {err.start}") from None
    except json.JSONDecodeError as err:
        raise error(Path(where), f"{what} is invalid JSON: {err}") from None
    except RecursionError:
        raise error(Path(where), f"{what} nests deeper than Python can parse") from None
    if nesting_depth(value) > MAX_DEPTH:
        raise error(Path(where), f"{what} nests deeper than {MAX_DEPTH} levels")
    return value


def read_json(path: str | Path, what: str, error: ErrorFactory = CheckpointError) -> Any:
    """Read and parse an untrusted JSON file (regular files only, bounded size)."""
    path = Path(path)
    if not path.exists():
        raise error(path, f"missing {what}")
    if not path.is_file():
        raise error(path, f"{what} is not a regular file")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise error(path, f"{what} is larger than the {MAX_JSON_BYTES} bytes allowed")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise error(path, f"unreadable {what}: {err}") from None
    return parse_json(raw, path, what, error)


def field(doc: Any, key: str, kind: type | tuple[type, ...], where: str | Path, what: str,
          error: ErrorFactory = CheckpointError, default: Any = ...) -> Any:
    """`doc[key]`, checked to be a `kind` (bools are not ints); `default` when absent, if given."""
    if not isinstance(doc, Mapping):
        raise error(Path(where), f"{what} must be a JSON object, got {type(doc).__name__}")
    if key not in doc:
        if default is ...:
            raise error(Path(where), f"{what} has no {key!r} field")
        return default
    value = doc[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        names = "/".join(k.__name__ for k in kinds)
        raise error(Path(where), f"{what}: {key!r} must be {names}, got {type(value).__name__}")
    return value


def bounded_int(value: Any, where: str | Path, what: str, lo: int = 0, hi: int = MAX_SIZE,
                error: ErrorFactory = CheckpointError) -> int:
    """`value` as an int in [lo, hi]; bools, floats (1e9) and out-of-range numbers are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(Path(where), f"{what} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise error(Path(where), f"{what} is {value}, outside the allowed range [{lo}, {hi}]")
    return value


def str_list(value: Any, where: str | Path, what: str, error: ErrorFactory = CheckpointError) -> list[str]:
    """`value` checked to be a list of strings."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise error(Path(where), f"{what} must be a list of strings")
    return value
