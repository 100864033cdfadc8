"""Discord's outbound budget, one definition for the adapter (prefix-command answers it sends
itself, charged in the gate's round trip) and the sender (workers): 50 requests/s per bot
(interaction responses are exempt and not charged). Per-route buckets are read from each
response's X-RateLimit headers by the sender."""

from __future__ import annotations

from functools import lru_cache

from bot.core import keys
from bot.core.limits import Bucket
from bot.platforms.discord.render import PLATFORM
from config import Settings, parse_rate

GLOBAL_BURST = 5


@lru_cache(maxsize=4)
def _global(rate: str) -> Bucket:
    return Bucket(keys.outbound(PLATFORM, "global"), parse_rate(rate).exact_interval_ms, GLOBAL_BURST)


def global_bucket(settings: Settings) -> Bucket:
    return _global(settings.DISCORD_GLOBAL_RATE)
