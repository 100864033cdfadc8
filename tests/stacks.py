"""A worker and a Telegram webhook bot of their own, on a given Redis and broker: for tests
that take Redis, the broker or a worker away, or need settings of their own."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from tests.botprocess import BotProcess
from tests.chat_telegram import TOKEN, telegram_bot
from tests.conftest import Worker

SHARED = ("REDIS_URL", "CELERY_BROKER_URL", "REDIS_TIMEOUT", "CELERY_QUEUE")


def stack_env(redis_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    """The environment of the stack's processes: its Redis, broker and queue, short Redis
    timeouts, and `extra` settings."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": broker_url,
        "TELEGRAM_TOKEN": TOKEN,
        "WORKER_METRICS_PORT": "0",
        "REDIS_TIMEOUT": "1",
        "CELERY_QUEUE": f"stack-{time.time_ns()}",
        **extra,
    }


def stack_bot(telegram: Any, env: dict[str, str]) -> BotProcess:
    """A webhook bot (not started) sharing the stack's Redis, broker, queue and extra settings."""
    shared = {k: v for k, v in env.items() if k in SHARED or os.environ.get(k) != v}
    shared.pop("TELEGRAM_TOKEN", None)
    return telegram_bot(telegram, mode="webhook", extra_env=shared)


def start_stack(redis_url: str, broker_url: str, telegram: Any, **extra: str) -> tuple[Worker, BotProcess]:
    """A started worker and webhook bot on the given Redis and broker (and settings); the
    worker runs 2 lookups at once unless `extra` sets WORKER_CONCURRENCY."""
    env = stack_env(redis_url, broker_url, **extra)
    worker = Worker(env, concurrency=int(extra.get("WORKER_CONCURRENCY", 2)), name="stack").start()
    try:
        return worker, stack_bot(telegram, env).start()
    except BaseException:
        worker.stop()
        raise


@contextlib.contextmanager
def running_stack(
    redis_url: str, broker_url: str, telegram: Any, **extra: str
) -> Iterator[tuple[Worker, BotProcess]]:
    """start_stack for a `with` block: both stopped after it, and the webhook forgotten (as
    if deleted), so later tests may poll again."""
    worker, bot = start_stack(redis_url, broker_url, telegram, **extra)
    try:
        yield worker, bot
    finally:
        bot.stop()
        worker.stop()
        telegram.state.webhook_url = ""
