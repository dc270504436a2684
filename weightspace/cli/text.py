"""Text from files (group names, notes, file names, manifest fields), made safe to print.

Such text is untrusted: rich would interpret `[/bold]` as markup (and crash on it),
and a terminal would obey the escape sequences it may carry. Every CLI passes it
through `safe_text` before printing.
"""
from __future__ import annotations

import unicodedata

from rich.markup import escape

# Unicode format characters that reorder or hide text on screen (bidi overrides, zero-width).
_INVISIBLE = frozenset("\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")


def safe_text(value: object) -> str:
    """`value` as one line of rich-escaped text without control or bidi characters."""
    text = str(value)
    kept = "".join(
        c for c in text if unicodedata.category(c) not in ("Cc", "Cs") and c not in _INVISIBLE
    )
    return escape(kept)
