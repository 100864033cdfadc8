"""Which function sends a reply for each platform, from a worker, and how senders fail.

Each platform module owns its sending; this table is the only place that lists them.
A sender raises `RetryLater` when the platform asks to wait or is unreachable (the deliver
task retries), and `Undeliverable` when retrying cannot help (blocked by the user).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from bot.request import Reply, Request

Sender = Callable[[Any, Request, Reply], None]

_session: requests.Session | None = None


def http_session() -> requests.Session:
    """One pooled HTTP session per worker process for every platform's sender (created
    lazily, so each prefork child makes its own after the fork)."""
    global _session
    if _session is None:
        _session = requests.Session()
    return _session


class RetryLater(Exception):
    def __init__(self, reason: str, after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.after = after  # seconds the platform asked us to wait, if it said


class Undeliverable(Exception):
    """The platform refused for good (user blocked the bot, chat gone)."""


def sender_for(platform: str) -> Sender:
    if platform == "console":
        from bot import console

        return console.send
    if platform == "telegram":
        from bot import telegram

        return telegram.send
    if platform == "discord":
        from bot import discord

        return discord.send
    raise ValueError(f"no sender for platform {platform!r}")
