"""Redis clients for every process (bot, workers, beat): at REDIS_URL, or — with
REDIS_SENTINELS set — at whichever server the Sentinels name primary of
REDIS_SENTINEL_SERVICE, followed through a failover by redis-py (a connection to a primary
that is gone or demoted fails, and the next one asks the Sentinels again). REDIS_URL still
gives the database and the password. Celery's broker and result backend reach Redis through
the same Sentinels (config/settings.py `celery_redis_url`, tasks/app.py).

Pools block for a free connection (up to their `timeout`) rather than fail at their limit, with
or without Sentinels: redis-py ships the blocking pool and the Sentinel pool as two classes,
so each Sentinel pool here is both.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelConnectionPool
from redis.connection import parse_url
from redis.sentinel import Sentinel, SentinelConnectionPool

from config import Settings


class _BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """The Sentinel pool (connections to the current primary) with the blocking pool's wait."""


class _AsyncBlockingSentinelPool(AsyncSentinelConnectionPool, aioredis.BlockingConnectionPool):
    """The same, for asyncio."""


def _sentinel_kwargs(settings: Settings) -> dict[str, Any]:
    return settings.celery_sentinel_options["sentinel_kwargs"]


def _database(url: str) -> dict[str, Any]:
    """What REDIS_URL says besides where: db, username, password (host and port are the
    Sentinels' to tell)."""
    found = parse_url(url)
    return {k: v for k, v in found.items() if k in ("db", "username", "password")}


def _pool(settings: Settings, plain: Any, manager: Any, through_sentinels: Any, **kwargs: Any) -> Any:
    if not settings.sentinels:
        return plain.from_url(settings.REDIS_URL, **kwargs)
    sentinels = manager(settings.sentinels, sentinel_kwargs=_sentinel_kwargs(settings))
    return through_sentinels(
        settings.REDIS_SENTINEL_SERVICE, sentinels, **_database(settings.REDIS_URL), **kwargs
    )


def sync_pool(settings: Settings, **kwargs: Any) -> redis.ConnectionPool:
    """A blocking pool to Redis for threads; `kwargs`: max_connections, timeouts…"""
    return _pool(settings, redis.BlockingConnectionPool, Sentinel, _BlockingSentinelPool, **kwargs)


def async_pool(settings: Settings, **kwargs: Any) -> aioredis.ConnectionPool:
    """The same for asyncio (the bot process)."""
    return _pool(
        settings, aioredis.BlockingConnectionPool, AsyncSentinel, _AsyncBlockingSentinelPool, **kwargs
    )
