"""Shared state read from Redis when Prometheus scrapes the bot: breakers, queue depth,
lookups running, dead letters (see `metrics.RedisGauges`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from bot.core import keys
from config import Settings


class GaugeReader:
    """Runs in a thread at each scrape, on one pooled client kept for the process.
    `queue_depth()` answers the broker's queue length as digits, or why it is unknown."""

    def __init__(self, settings: Settings, queue_depth: Callable[[], str]):
        self.settings = settings
        self.queue_depth = queue_depth
        self._client: redis.Redis | None = None

    def __call__(self) -> dict[str, Any]:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
            )
        client = self._client
        breakers = {}
        for key in client.scan_iter(match=keys.BREAKER_PATTERN, count=200):
            provider = keys.breaker_provider(key.decode())
            if provider is None:
                continue  # the failures set beside the state hash
            state = client.hget(keys.breaker(provider), "state")
            breakers[provider] = state.decode() if isinstance(state, bytes) else "closed"
        depth = self.queue_depth()
        return {
            "breakers": breakers,
            "queue_depth": float(depth) if depth.isdigit() else float("nan"),
            "in_flight": float(client.get(keys.RUNNING) or 0),
            "dead_letters": float(client.llen(keys.DEAD_LETTERS)),
        }
