"""Outbound rate limits shared through Redis by every process that sends to a platform."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bot.senders import RetryLater

__all__ = ["Bucket", "RetryLater", "acquire"]

SCRIPT = Path(__file__).with_name("outbound.lua").read_text()
# Waiting in the worker is fine for a short while; longer, and the task is retried later
# so the worker process is free for other deliveries.
MAX_INLINE_WAIT = 3.0


class Bucket:
    def __init__(self, key: str, interval_ms: int, burst: int):
        self.key = key
        self.interval_ms = interval_ms
        self.burst = burst


def acquire(redis_client: Any, buckets: list[Bucket], deadline: float = MAX_INLINE_WAIT) -> None:
    """Block until every bucket has room (charging them all), or raise RetryLater."""
    script = redis_client.register_script(SCRIPT)
    args: list[int] = []
    for bucket in buckets:
        args += [bucket.interval_ms, bucket.burst]
    waited = 0.0
    while True:
        wait_ms = int(script(keys=[b.key for b in buckets], args=args))
        if wait_ms <= 0:
            return
        wait = wait_ms / 1000
        if waited + wait > deadline:
            raise RetryLater("outbound limit", after=wait)
        time.sleep(wait)  # the limiter said exactly how long; this is pacing, not polling
        waited += wait
