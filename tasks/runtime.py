"""What every task of a worker process shares: one Redis client (thread-safe: its pool
hands each thread a connection) and an upstream client per thread."""

from __future__ import annotations

import threading

import redis

from bot.core import connect
from bot.upstream.client import Upstream
from config import get_settings

_redis: redis.Redis | None = None
_local = threading.local()


def worker_redis() -> redis.Redis:
    """One client per worker process (redis-py pools reconnect after fork by pid). Its pool
    holds a connection for every pool thread and the lease threads, and a thread beyond that
    waits for one (up to REDIS_TIMEOUT): redis-py's default pool stops at 100 connections and
    raises, which made lookups fail under a threads pool larger than that."""
    global _redis
    if _redis is None:
        settings = get_settings()
        pool = connect.sync_pool(
            settings,
            max_connections=settings.WORKER_CONCURRENCY + 16,
            timeout=settings.REDIS_TIMEOUT,
            socket_timeout=settings.REDIS_TIMEOUT,
            socket_connect_timeout=settings.REDIS_TIMEOUT,
            health_check_interval=30,
        )
        _redis = redis.Redis(connection_pool=pool)
    return _redis


def upstream() -> Upstream:
    """Per thread: its `requests.Session` is not promised to be safe to share."""
    client: Upstream | None = getattr(_local, "upstream", None)
    if client is None:
        client = _local.upstream = Upstream(get_settings(), redis_client=worker_redis())
    return client
