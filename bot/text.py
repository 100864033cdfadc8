"""Rendering rules shared by every platform: fitting a reply into a length limit."""

from __future__ import annotations


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
