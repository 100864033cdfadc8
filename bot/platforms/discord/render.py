"""Discord's rendering rules, shared by the adapter and the sender: the 2000-character limit
of one message, and no mentions ever."""

from __future__ import annotations

from bot.core import text as text_rules

PLATFORM = "discord"
MAX_TEXT = 2000  # Discord: message content
NO_MENTIONS: dict[str, list[str]] = {"parse": []}  # upstream text must never ping @everyone, a role or a user


def split(text: str) -> list[str]:
    return text_rules.split_text(text, MAX_TEXT)
