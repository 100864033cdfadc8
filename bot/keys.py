"""Every Redis key the bot uses, named in one place."""

from __future__ import annotations

BANNED = "admin:banned"  # hash user_key -> reason
BAN_NOTICED = "admin:ban_noticed"  # hash user_key -> 1
MAINTENANCE = "admin:maintenance"  # string: the message users see
LIMITS = "admin:limits"  # hash user_key | "*" -> "interval_ms:burst"
DEAD_LETTERS = "deadletters"  # list of JSON entries, newest first
DEAD_LETTERS_MAX = 1000


def seen(request_id: str) -> str:
    return f"seen:{request_id}"


def rate(user_key: str) -> str:
    return f"rl:{user_key}"


def delivered(request_id: str) -> str:
    return f"delivered:{request_id}"


def console_replies(chat: str) -> str:
    return f"console:replies:{chat}"
