"""How sending a reply can fail, for every platform's sender and for the tasks that retry.

A sender raises `RetryLater` when waiting may help (the platform asked us to wait, an outbound
limit is full, the platform is unreachable) and `Undeliverable` when it cannot (the user
blocked the bot, the chat is gone). The shared limiter raises `RetryLater` too, which is why
this lives in the core rather than beside the senders.
"""

from __future__ import annotations


class RetryLater(Exception):
    def __init__(self, reason: str, after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.after = after  # seconds the platform asked us to wait, if it said


class Undeliverable(Exception):
    """The platform refused for good. `why` says whether the chat will ever take a message:
    "blocked" (the user blocked the bot, or it may not post there), "gone" (the chat or
    channel no longer exists) — both pause the chat's subscriptions — or "refused" (this
    message was refused: a bug of ours, not the chat's)."""

    def __init__(self, reason: str, why: str = "refused"):
        super().__init__(reason)
        self.why = why
