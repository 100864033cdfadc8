"""`python -m bot`: start the adapters the settings enable (the console when none is)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import redis.asyncio as aioredis

from config import ConfigError, Settings, get_settings


def make_redis(settings: Settings) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=settings.REDIS_TIMEOUT,
        socket_connect_timeout=settings.REDIS_TIMEOUT,
        health_check_interval=30,
    )


async def serve(settings: Settings) -> int:
    from bot import console

    client = make_redis(settings)
    try:
        return await console.run(settings, client)
    finally:
        await client.aclose()


def main() -> int:
    try:
        settings = get_settings()
    except ConfigError as exc:
        return int(exc.code or 2)
    # On the console, log lines would interleave with the chat: only warnings and worse.
    level = settings.LOG_LEVEL if settings.LOG_LEVEL == "DEBUG" else "WARNING"
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # SIGTERM (a process manager stopping us) ends the bot like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return asyncio.run(serve(settings))
    except KeyboardInterrupt:
        return 130
