"""Telegram's outbound budget, one definition for the adapter (answers it sends itself, charged
in the gate's round trip) and the sender (workers): about 30 messages/s per bot, about 1/s per
chat with short bursts tolerated, 20/minute per group (Bot API FAQ). Keys share the
{telegram} hash tag."""

from __future__ import annotations

from functools import lru_cache

from bot.core import keys
from bot.core.limits import Bucket
from bot.core.request import Request
from bot.platforms.telegram.render import GROUP_TYPES, PLATFORM
from config import Rate, Settings, parse_rate

GROUP_BURST = 3
# The per-bot bucket takes short bursts; workers (replies that waited: misses, deferred
# answers) may use only part of it, so an answer the bot process sends at once — a cache hit
# for a user who is not flooding — finds room even while a backlog drains.
BOT_BURST = 10
WORKER_RESERVE = 5

_rate = lru_cache(maxsize=16)(parse_rate)  # on every hit: parse each setting once


def buckets(request: Request, settings: Settings, worker: bool = False) -> tuple[Bucket, ...]:
    """The buckets a reply to `request` is charged to; `worker`: sent by a worker, which
    leaves WORKER_RESERVE of the per-bot burst to the bot process (same GCRA state, a smaller
    burst: a stricter test of the same bucket)."""
    per_bot: Rate = _rate(settings.TELEGRAM_GLOBAL_RATE)
    per_chat: Rate = _rate(settings.TELEGRAM_CHAT_RATE)
    chosen: tuple[Bucket, ...] = (
        Bucket(
            keys.outbound(PLATFORM),
            per_bot.exact_interval_ms,
            BOT_BURST - WORKER_RESERVE if worker else BOT_BURST,
        ),
        Bucket(
            keys.outbound(PLATFORM, "chat", request.chat),
            per_chat.exact_interval_ms,
            settings.TELEGRAM_CHAT_BURST,
        ),
    )
    if request.meta.get("chat_type") in GROUP_TYPES:
        per_group: Rate = _rate(settings.TELEGRAM_GROUP_RATE)
        chosen += (
            Bucket(keys.outbound(PLATFORM, "group", request.chat), per_group.exact_interval_ms, GROUP_BURST),
        )
    return chosen
