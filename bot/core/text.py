"""Text rules shared by every platform and lookup: cleaning what users type, and fitting a
reply into a length limit."""

from __future__ import annotations

import unicodedata


def clean(text: str) -> str:
    """User input as one line: compatibility forms folded (NFKC), so look-alike input shares
    one cache entry; control and format characters (newlines, zero-width, bidi overrides)
    dropped; runs of white space made one space."""
    text = " ".join(unicodedata.normalize("NFKC", text).split())  # tabs, newlines → spaces
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    return " ".join(text.split())


def split_text(text: str, limit: int) -> list[str]:
    """Split at a paragraph, line or word boundary so that every part fits `limit`."""
    parts: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"))
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut < limit // 2:
            cut = limit  # one long word: a hard cut is the only way
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest or not parts:
        parts.append(rest)
    return parts
