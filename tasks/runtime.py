"""What every task of a worker process shares: one Redis client and one upstream client."""

from __future__ import annotations

import redis

from bot.upstream.client import Upstream
from config import get_settings

_redis: redis.Redis | None = None
_upstream: Upstream | None = None


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
    global _upstream
    if _upstream is None:
        _upstream = Upstream(get_settings(), redis_client=worker_redis())
    return _upstream
