"""What the CLIs share for user code: importing MODULE:FACTORY (the current folder
included, as `python -m` would) and showing the parser's warnings."""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
import warnings
from pathlib import Path

from rich.console import Console

from ..errors import ConfigError
from .text import safe_text

_PACKAGE = Path(__file__).resolve().parent.parent


def import_target(target: str, flag: str, default: str = "build"):
    """The object MODULE:NAME names (NAME defaults to `default`); the current folder is
    importable. Raises ConfigError naming `flag` when the module or name is missing."""
    module_name, _, attr = target.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return getattr(importlib.import_module(module_name), attr or default)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{flag} {target}: cannot import ({err})") from err


def model_and_inputs(target: str, flag: str) -> tuple:
    """Call the factory MODULE:FACTORY; it must return (model, example_inputs)."""
    built = import_target(target, flag)()
    if not (isinstance(built, tuple) and len(built) == 2):
        raise ConfigError(f"{flag} {target} must return (model, example_inputs), got {type(built).__name__}")
    model, inputs = built
    return model, inputs if isinstance(inputs, tuple) else (inputs,)


@contextlib.contextmanager
def parser_warnings(console: Console):
    """Record warnings while the body runs, then print weightspace's own (ops without a
    rule, entries the traced call does not read) and drop torch's export chatter. Yields
    a set: messages the body adds to it (notes it prints itself) are not repeated."""
    printed: set[str] = set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield printed
    for w in caught:
        message = str(w.message)
        if message in printed or not Path(w.filename).resolve().is_relative_to(_PACKAGE):
            continue
        printed.add(message)
        console.print(f"warning: {safe_text(message)}")
