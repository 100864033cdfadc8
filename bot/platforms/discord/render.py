"""Discord's rendering rules, shared by the adapter and the sender: the 2000-character limit
of one message, and no mentions ever."""

from __future__ import annotations

from typing import Any

from bot.core import text as text_rules

PLATFORM = "discord"
MAX_TEXT = 2000  # Discord: message content
NO_MENTIONS: dict[str, list[str]] = {"parse": []}  # upstream text must never ping @everyone, a role or a user


def split(text: str) -> list[str]:
    return text_rules.split_text(text, MAX_TEXT)


def components(buttons: tuple[tuple[object, str], ...]) -> list[dict[str, Any]]:
    """One action row of secondary buttons (labels rendered already; custom_id ≤ 100)."""
    if not buttons:
        return []
    row = [{"type": 2, "style": 2, "label": str(label)[:80], "custom_id": data} for label, data in buttons]
    return [{"type": 1, "components": row[:5]}]
