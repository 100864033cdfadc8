"""Telegram's outbound budget, one definition for the adapter (answers it sends itself, charged
in the gate's round trip) and the sender (workers): about 30 messages/s per bot, about 1/s per
chat with short bursts tolerated, 20/minute per group (Bot API FAQ). Keys share the
{telegram} hash tag.

Subscription notifications may go as paid broadcasts instead (TELEGRAM_PAID_BROADCAST_RATE,
off by default): sent with `allow_paid_broadcast`, they are outside the 30/s — up to 1,000/s,
for 0.1 Telegram Stars each — and charged to their own per-bot bucket, so a tick's fan-out
neither waits for nor crowds out the answers users are waiting for.
"""

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
PAID_BURST = 50

_rate = lru_cache(maxsize=16)(parse_rate)  # on every hit: parse each setting once


def buckets(request: Request, settings: Settings, worker: bool = False) -> tuple[Bucket, ...]:
    """The buckets a reply to `request` is charged to; `worker`: sent by a worker, which
    leaves WORKER_RESERVE of the per-bot burst to the bot process (same GCRA state, a smaller
    burst: a stricter test of the same bucket)."""
    per_chat: Rate = _rate(settings.TELEGRAM_CHAT_RATE)
    if worker and paid_broadcast(request, settings):
        paid: Rate = _rate(settings.TELEGRAM_PAID_BROADCAST_RATE)
        lane = Bucket(keys.outbound(PLATFORM, "paid"), paid.exact_interval_ms, PAID_BURST)
    else:
        per_bot: Rate = _rate(settings.TELEGRAM_GLOBAL_RATE)
        burst = BOT_BURST - WORKER_RESERVE if worker else BOT_BURST
        lane = Bucket(keys.outbound(PLATFORM), per_bot.exact_interval_ms, burst)
    chosen: tuple[Bucket, ...] = (
        lane,
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


def paid_broadcast(request: Request, settings: Settings) -> bool:
    """Whether this reply goes as a paid broadcast: a subscription's notification, with the
    paid lane turned on."""
    return bool(settings.TELEGRAM_PAID_BROADCAST_RATE and request.meta.get("subscription"))
