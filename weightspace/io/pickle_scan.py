"""Find the globals a torch pickle would import, without unpickling it.

When `torch.load(weights_only=True)` refuses a file we want to tell the user *which*
code the file asks for. The pickle is only read as bytecode with
`pickletools.genops`: nothing in it is imported, constructed or called.
"""
from __future__ import annotations

import io
import pickletools
import zipfile
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from pathlib import Path
from typing import BinaryIO, Iterable

_MARK = object()
_STRING_OPS = frozenset(
    {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"}
)
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_EXT_OPS = frozenset({"EXT1", "EXT2", "EXT4"})
# A legacy (non-zip) torch file is five pickles in a row, then raw storage bytes.
_LEGACY_PICKLES = 5
# Used only when torch's private allow-list cannot be imported (it moves between releases).
_FALLBACK_ALLOWED = frozenset(
    {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch.nn.parameter.Parameter",
        "torch.Size",
        "torch.device",
        "torch.serialization._get_layout",
        "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage",
        "builtins.set",
        "builtins.complex",
        "builtins.bytearray",
        "_codecs.encode",
    }
    | {
        f"torch.{kind}Storage"
        for kind in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
    }
    | {
        f"torch.{dtype}"
        for dtype in ("float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool")
    }
)


def allowed_globals() -> frozenset[str]:
    """The dotted names `torch.load(weights_only=True)` accepts, user additions included."""
    try:
        from torch import _weights_only_unpickler as wo

        return frozenset(wo._get_allowed_globals()) | frozenset(wo._get_user_allowed_globals())
    except (ImportError, AttributeError):
        return _FALLBACK_ALLOWED


def _dotted(module: str, name: str) -> str:
    """Python 3 spelling of a global, mapped the way torch's unpickler maps protocol-2 names."""
    if (module, name) in NAME_MAPPING:
        module, name = NAME_MAPPING[(module, name)]
    elif module in IMPORT_MAPPING:
        module = IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _pop(stack: list, before: list) -> list:
    """Pop what an opcode consumes: everything down to a mark, or len(before) items."""
    popped: list = []
    if pickletools.markobject in before:
        while stack:
            item = stack.pop()
            if item is _MARK:
                break
        before = before[: before.index(pickletools.markobject)]
    for _ in before:
        popped.append(stack.pop() if stack else None)
    return popped


def _globals_in_one(stream: BinaryIO) -> list[str]:
    """Globals referenced by the single pickle starting at the stream's position."""
    found: list[str] = []
    stack: list = []
    memo: dict[int, object] = {}
    for op, arg, _pos in pickletools.genops(stream):
        name = op.name
        top = stack[-1] if stack else None
        if name in _STRING_OPS:
            stack.append(arg)
            continue
        if name in _PUT_OPS:
            memo[arg] = top
            continue
        if name == "MEMOIZE":
            memo[len(memo)] = top
            continue
        if name in _GET_OPS:
            stack.append(memo.get(arg))
            continue
        if name == "DUP":
            stack.append(top)
            continue
        if name == "MARK":
            stack.append(_MARK)
            continue
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found.append(_dotted(module, attr))
        elif name == "STACK_GLOBAL":
            attr, module = _pop(stack, op.stack_before)
            if isinstance(module, str) and isinstance(attr, str):
                found.append(_dotted(module, attr))
            else:
                found.append("<unresolved STACK_GLOBAL>")
            stack.append(None)
            continue
        elif name in _EXT_OPS:
            found.append(f"<copyreg extension {arg}>")
        _pop(stack, op.stack_before)
        stack.extend([None] * len(op.stack_after))
    return found


def scan_stream(stream: BinaryIO, max_pickles: int = 1) -> list[str]:
    """Globals referenced by up to `max_pickles` consecutive pickles in `stream`.

    Stops quietly at the first point that is not a pickle (end of file, raw storage
    bytes); globals found before it are still returned.
    """
    found: list[str] = []
    for _ in range(max_pickles):
        try:
            found.extend(_globals_in_one(stream))
        except (ValueError, EOFError, UnicodeDecodeError, IndexError, KeyError, TypeError):
            break
    return found


def _zip_pickles(path: Path) -> Iterable[bytes]:
    """The `data.pkl` of every record in a torch zip archive."""
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.filename == "data.pkl" or info.filename.endswith("/data.pkl"):
                yield zf.read(info)


def referenced_globals(path: str | Path) -> list[str]:
    """Every global a torch file's pickle references, first occurrence order, no repeats."""
    path = Path(path)
    found: list[str] = []
    if zipfile.is_zipfile(path):
        try:
            for data in _zip_pickles(path):
                found.extend(scan_stream(io.BytesIO(data)))
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError):
            pass
    else:
        with open(path, "rb") as f:
            found = scan_stream(f, max_pickles=_LEGACY_PICKLES)
    return list(dict.fromkeys(found))


def unsafe_globals(path: str | Path) -> list[str]:
    """The globals in a torch file that `torch.load(weights_only=True)` would refuse."""
    allowed = allowed_globals()
    return [g for g in referenced_globals(path) if g not in allowed]
