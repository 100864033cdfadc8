"""Telegram's rendering rules, shared by the adapter and the sender: HTML escaping for the
parse mode, and splitting at the 4096-character limit of one message."""

from __future__ import annotations

import html

from bot.core import text as text_rules

PLATFORM = "telegram"
MAX_TEXT = 4096  # Bot API: text of one message, counted after entity parsing
PARSE_MODE = "HTML"
GROUP_TYPES = ("group", "supergroup")


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    return text_rules.split_text(text, limit)


def reply_parameters(message_id: int) -> dict[str, object]:
    """Show which message an answer answers (in a group), and send it even if that one is gone."""
    return {"message_id": message_id, "allow_sending_without_reply": True}


def render(text: str) -> list[str]:
    """Parts ready for `parse_mode=HTML`: split on the visible text, then escaped, so an
    `&amp;` still counts as the one character Telegram shows."""
    return [html.escape(part, quote=False) for part in split_text(text)]
