"""What every task of a worker process shares: one Redis client (thread-safe: its pool
hands each thread a connection) and an upstream client per thread."""

from __future__ import annotations

import threading

import redis

from bot.upstream.client import Upstream
from config import get_settings

_redis: redis.Redis | None = None
_local = threading.local()


def worker_redis() -> redis.Redis:
    """One client per worker process (redis-py pools reconnect after fork by pid)."""
    global _redis
    if _redis is None:
        settings = get_settings()
        _redis = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=settings.REDIS_TIMEOUT,
            socket_connect_timeout=settings.REDIS_TIMEOUT,
            health_check_interval=30,
        )
    return _redis


def upstream() -> Upstream:
    """Per thread: its `requests.Session` is not promised to be safe to share."""
    client: Upstream | None = getattr(_local, "upstream", None)
    if client is None:
        client = _local.upstream = Upstream(get_settings(), redis_client=worker_redis())
    return client
