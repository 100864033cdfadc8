"""Shared state read from Redis when Prometheus scrapes the bot: breakers, queue depth,
lookups running, dead letters, subscriptions and their lag (see `metrics.RedisGauges`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import redis

from bot.core import connect, keys
from config import Settings


class GaugeReader:
    """Runs in a thread at each scrape, on one pooled client kept for the process: one
    pipelined round trip whatever the size of the keyspace (no SCAN). `providers` are the
    upstreams with a breaker (from the command registry); `queue_depth()` answers the broker's
    queue length as digits, or why it is unknown."""

    def __init__(self, settings: Settings, providers: Iterable[str], queue_depth: Callable[[], str]):
        self.settings = settings
        self.providers = sorted(set(providers))
        self.queue_depth = queue_depth
        self._client: redis.Redis | None = None

    def __call__(self) -> dict[str, Any]:
        if self._client is None:
            pool = connect.sync_pool(
                self.settings, max_connections=4, timeout=2, socket_timeout=2, socket_connect_timeout=2
            )
            self._client = redis.Redis(connection_pool=pool)
        pipe = self._client.pipeline(transaction=False)
        for provider in self.providers:
            pipe.hget(keys.breaker(provider), "state")
        pipe.get(keys.RUNNING)
        pipe.llen(keys.DEAD_LETTERS)
        now_ms = int(time.time() * 1000)
        pipe.zcard(keys.SUBSCRIPTIONS_DUE)
        pipe.zcount(keys.SUBSCRIPTIONS_DUE, "-inf", now_ms)
        pipe.zrange(keys.SUBSCRIPTIONS_DUE, 0, 0, withscores=True)
        *states, running, dead, active, due, oldest = pipe.execute()
        depth = self.queue_depth()
        return {
            "breakers": {
                provider: state.decode() if isinstance(state, bytes) else "closed"
                for provider, state in zip(self.providers, states, strict=True)
            },
            "queue_depth": float(depth) if depth.isdigit() else float("nan"),
            "in_flight": float(running or 0),
            "dead_letters": float(dead),
            "subscriptions": float(active),
            "subscriptions_due": float(due),
            # How far behind schedule the most overdue subscription is (0: none is overdue).
            "subscriptions_lag": max(0.0, (now_ms - oldest[0][1]) / 1000) if oldest else 0.0,
        }
