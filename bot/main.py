"""`python -m bot`: start the adapters the settings enable (the console when none is).

The composition root: the one module that builds the pipeline with its task queue, the
adapters and the HTTP server, and so the one place in `bot/` that imports `tasks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import redis.asyncio as aioredis
import redis.exceptions
from prometheus_client import REGISTRY

from bot.commands import registry
from bot.core import connect
from bot.core.queue import TaskQueue
from bot.ops import http, logs, metrics, sentry
from bot.ops.gauges import GaugeReader
from bot.platforms.base import Adapter
from config import ConfigError, Settings, get_settings

log = logging.getLogger("bot")


def make_redis(settings: Settings) -> aioredis.Redis:
    """The bot's Redis client: REDIS_POOL_SIZE connections, opened by `warm_redis` at start.
    A burst beyond them waits for one (up to REDIS_TIMEOUT) instead of opening more or
    failing (redis-py's default pool raises MaxConnectionsError at its limit, which would tell
    users the bot is unavailable). No health-check PING before a command on an idle
    connection: a dead one fails its command, and redis-py's retry reconnects."""
    pool = connect.async_pool(
        settings,
        max_connections=settings.REDIS_POOL_SIZE,
        timeout=settings.REDIS_TIMEOUT,
        socket_timeout=settings.REDIS_TIMEOUT,
        socket_connect_timeout=settings.REDIS_TIMEOUT,
        socket_keepalive=True,
    )
    return aioredis.Redis(connection_pool=pool)


async def warm_redis(client: aioredis.Redis) -> None:
    """Open every connection of the pool and load the gate's scripts before the first message:
    a burst at start-up then costs one round trip per message, as later ones do, instead of
    a connection set-up (and CLIENT SETINFO) each."""
    from bot.core.gate import Gate

    pool = client.connection_pool
    opened = await asyncio.gather(
        *(pool.get_connection() for _ in range(pool.max_connections)), return_exceptions=True
    )
    for connection in opened:
        if not isinstance(connection, BaseException):
            await pool.release(connection)
    try:
        await Gate.load_scripts(client)
    except (redis.exceptions.RedisError, OSError) as exc:  # users are told it is unavailable
        log.warning("bot: Redis is not reachable at start: %r", exc)


def readiness_checks(
    client: aioredis.Redis, queue: TaskQueue, adapters: list[Adapter]
) -> dict[str, http.Check]:
    async def redis_check() -> str:
        return "" if await client.ping() else "no PONG"

    checks: dict[str, http.Check] = {"redis": redis_check, "broker": queue.reachable}
    for adapter in adapters:

        async def connected(adapter: Adapter = adapter) -> str:
            return "" if adapter.connected() else "not connected"

        checks[type(adapter).__name__.removesuffix("Adapter").lower()] = connected
    return checks


def make_queue(settings: Settings) -> TaskQueue:
    # The one import of `tasks` from `bot/`: the pipeline is handed the queue it publishes to.
    from tasks.enqueue import CeleryQueue

    return CeleryQueue(settings)


def has_platform(settings: Settings) -> bool:
    return bool(settings.TELEGRAM_TOKEN.get_secret_value() or settings.DISCORD_TOKEN.get_secret_value())


async def serve_platforms(settings: Settings, client: aioredis.Redis, queue: TaskQueue) -> int:
    """Run the platform adapters and the HTTP server until SIGTERM or Ctrl-C."""
    from bot.pipeline import Pipeline

    await warm_redis(client)
    pipeline = Pipeline(settings, client, queue)
    depth_now = getattr(queue, "depth_now", lambda: "unknown")
    gauges = metrics.RedisGauges(GaugeReader(settings, registry.breakers(), depth_now))
    with contextlib.suppress(ValueError):  # registered once per process
        REGISTRY.register(gauges)
    # Each SDK is imported only when its platform is on.
    adapters: list[Adapter] = []
    if settings.TELEGRAM_TOKEN.get_secret_value():
        from bot.platforms.telegram.adapter import TelegramAdapter

        adapters.append(TelegramAdapter(settings, pipeline))
    if settings.DISCORD_TOKEN.get_secret_value():
        from bot.platforms.discord.adapter import DiscordAdapter

        adapters.append(DiscordAdapter(settings, pipeline))
    routes = [route for adapter in adapters for route in adapter.routes()]
    checks = readiness_checks(client, queue, adapters)
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
        await pipeline.close()
    return 0


async def serve(settings: Settings) -> int:
    from bot.platforms.console import adapter as console

    client = make_redis(settings)
    queue = make_queue(settings)
    try:
        if has_platform(settings):
            return await serve_platforms(settings, client, queue)
        return await console.run(settings, client, queue)
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
    sentry.init(settings, "bot")
    # SIGTERM (a process manager stopping us) ends the bot like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return asyncio.run(serve(settings))
    except KeyboardInterrupt:
        return 130
    finally:
        sentry.flush()
