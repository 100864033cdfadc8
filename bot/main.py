"""`python -m bot`: start the adapters the settings enable (the console when none is)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

import redis.asyncio as aioredis

from config import ConfigError, Settings, get_settings

log = logging.getLogger("bot")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


def has_platform(settings: Settings) -> bool:
    return bool(settings.TELEGRAM_TOKEN.get_secret_value() or settings.DISCORD_TOKEN.get_secret_value())


async def serve_platforms(settings: Settings, client: aioredis.Redis) -> int:
    """Run the platform adapters and the HTTP server until SIGTERM or Ctrl-C."""
    from bot import http
    from bot.pipeline import Pipeline

    pipeline = Pipeline(settings, client)
    adapters: list[Any] = []
    if settings.TELEGRAM_TOKEN.get_secret_value():
        from bot.telegram import TelegramAdapter

        adapters.append(TelegramAdapter(settings, pipeline))
    if settings.DISCORD_TOKEN.get_secret_value():
        from bot.discord import DiscordAdapter

        adapters.append(DiscordAdapter(settings, pipeline))
    routes = [route for adapter in adapters for route in adapter.routes()]
    runner = await http.start(settings.HTTP_HOST, settings.HTTP_PORT, routes)
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
    # On the console, log lines would interleave with the chat: only warnings and worse.
    level = "WARNING" if console_mode and settings.LOG_LEVEL != "DEBUG" else settings.LOG_LEVEL
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every URL, token included
    # SIGTERM (a process manager stopping us) ends the bot like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return asyncio.run(serve(settings))
    except KeyboardInterrupt:
        return 130
