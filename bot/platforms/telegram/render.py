"""Telegram's rendering rules, shared by the adapter and the sender: HTML escaping for the
parse mode, and splitting at the 4096-character limit of one message."""

from __future__ import annotations

import functools
import hashlib
import html
import json
from typing import Any

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


@functools.lru_cache(maxsize=256)
def keyboard(buttons: tuple[tuple[object, str], ...]) -> dict[str, Any]:
    """An inline keyboard of one row (the buttons' labels rendered already). The same few
    keyboards go under every hit of an answer: built once each (do not change the result)."""
    return {"inline_keyboard": [[{"text": str(label), "callback_data": data} for label, data in buttons]]}


@functools.lru_cache(maxsize=256)
def reply_markup(buttons: tuple[tuple[object, str], ...]) -> str:
    """`keyboard` as the JSON a form field carries."""
    return json.dumps(keyboard(buttons), ensure_ascii=False)


INLINE_DESCRIPTION = 200  # what the result list shows under a result's title


def inline_answer(
    query_id: str, text: str, cache_time: int, personal: bool, title: str = ""
) -> dict[str, str]:
    """answerInlineQuery's parameters: one article result whose message is `text` (its first
    part, should it not fit one message), titled with its first line unless `title` is given;
    `cache_time`: how long Telegram may serve it for the same query; `personal`: only to this
    user (the text reads differently for others: their language)."""
    first, _, rest = text.partition("\n")
    result = {
        "type": "article",
        "id": hashlib.sha256(text.encode()).hexdigest()[:32],  # 1-64 bytes
        "title": (title or first)[:INLINE_DESCRIPTION],
        "description": (rest if not title else text)[:INLINE_DESCRIPTION],
        "input_message_content": {"message_text": render(text)[0], "parse_mode": PARSE_MODE},
    }
    return {
        "inline_query_id": query_id,
        "results": json.dumps([result], ensure_ascii=False),
        "cache_time": str(max(0, int(cache_time))),
        "is_personal": "true" if personal else "false",
    }
