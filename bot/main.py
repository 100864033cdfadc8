"""`python -m bot`: start the adapters the settings enable (the console when none is)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from bot import http, logs, metrics, monitoring
from config import ConfigError, Settings, get_settings

log = logging.getLogger("bot")


def make_redis(settings: Settings) -> aioredis.Redis:
    """The bot's Redis client. A burst of messages beyond the pool waits for a connection
    (up to REDIS_TIMEOUT) instead of failing: redis-py's default pool raises
    MaxConnectionsError at its limit, which would tell users the bot is unavailable."""
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.REDIS_URL,
        max_connections=64,
        timeout=settings.REDIS_TIMEOUT,
        socket_timeout=settings.REDIS_TIMEOUT,
        socket_connect_timeout=settings.REDIS_TIMEOUT,
        health_check_interval=30,
    )
    return aioredis.Redis(connection_pool=pool)


def readiness_checks(
    settings: Settings, client: aioredis.Redis, adapters: list[Any]
) -> dict[str, http.Check]:
    async def redis_check() -> str:
        return "" if await client.ping() else "no PONG"

    async def broker_check() -> str:
        return await asyncio.to_thread(broker_reachable)

    checks: dict[str, http.Check] = {"redis": redis_check, "broker": broker_check}
    for adapter in adapters:

        async def connected(adapter: Any = adapter) -> str:
            return "" if adapter.connected() else "not connected"

        checks[type(adapter).__name__.removesuffix("Adapter").lower()] = connected
    return checks


def broker_reachable() -> str:
    from tasks.app import app

    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=2)
    return ""


_gauge_redis: Any = None


def read_gauges(settings: Settings) -> dict[str, Any]:
    """Shared state for the gauges on /metrics: breakers, queue, lookups running, dead letters.
    Runs in a thread at each scrape, on one pooled client kept for the process."""
    global _gauge_redis
    import redis as redis_sync

    from bot import keys
    from bot.admin import queue_depth_sync

    if _gauge_redis is None:
        _gauge_redis = redis_sync.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )
    client = _gauge_redis
    breakers = {}
    for key in client.scan_iter(match="breaker:{*}", count=200):
        name = key.decode()
        if name.endswith(":fails"):
            continue
        state = client.hget(name, "state")
        breakers[name[len("breaker:{") : -1]] = state.decode() if isinstance(state, bytes) else "closed"
    depth = queue_depth_sync(settings)
    return {
        "breakers": breakers,
        "queue_depth": float(depth) if depth.isdigit() else float("nan"),
        "in_flight": float(client.get(keys.RUNNING) or 0),
        "dead_letters": float(client.llen(keys.DEAD_LETTERS)),
    }


def has_platform(settings: Settings) -> bool:
    return bool(settings.TELEGRAM_TOKEN.get_secret_value() or settings.DISCORD_TOKEN.get_secret_value())


async def serve_platforms(settings: Settings, client: aioredis.Redis) -> int:
    """Run the platform adapters and the HTTP server until SIGTERM or Ctrl-C."""
    from bot.pipeline import Pipeline

    pipeline = Pipeline(settings, client)
    gauges = metrics.RedisGauges(lambda: read_gauges(settings))
    with contextlib.suppress(ValueError):  # registered once per process
        REGISTRY.register(gauges)
    adapters: list[Any] = []
    if settings.TELEGRAM_TOKEN.get_secret_value():
        from bot.telegram import TelegramAdapter

        adapters.append(TelegramAdapter(settings, pipeline))
    if settings.DISCORD_TOKEN.get_secret_value():
        from bot.discord import DiscordAdapter

        adapters.append(DiscordAdapter(settings, pipeline))
    routes = [route for adapter in adapters for route in adapter.routes()]
    checks = readiness_checks(settings, client, adapters)
    runner = await http.start(settings.HTTP_HOST, settings.HTTP_PORT, routes, checks)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for adapter in adapters:
            await adapter.connect()
        log.info("bot: ready, HTTP on %s:%s", settings.HTTP_HOST, settings.HTTP_PORT)
        await stop.wait()
    finally:
        for adapter in adapters:
            try:
                await adapter.disconnect()
            except Exception as exc:  # shutting down: report, keep going
                log.warning("bot: %s did not disconnect cleanly: %r", type(adapter).__name__, exc)
        await runner.cleanup()
    return 0


async def serve(settings: Settings) -> int:
    from bot import console

    client = make_redis(settings)
    try:
        if has_platform(settings):
            return await serve_platforms(settings, client)
        return await console.run(settings, client)
    finally:
        await client.aclose()


def main() -> int:
    try:
        settings = get_settings()
    except ConfigError as exc:
        return int(exc.code or 2)
    console_mode = not has_platform(settings)
    if console_mode:
        # On the console, log lines would interleave with the chat: readable lines, and
        # only warnings and worse unless debugging.
        level = "DEBUG" if settings.LOG_LEVEL == "DEBUG" else "WARNING"
        logs.setup(settings.model_copy(update={"LOG_FORMAT": "console"}), "bot", level)
    else:
        logs.setup(settings, "bot")
    monitoring.init(settings, "bot")
    # SIGTERM (a process manager stopping us) ends the bot like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return asyncio.run(serve(settings))
    except KeyboardInterrupt:
        return 130
    finally:
        monitoring.flush()
