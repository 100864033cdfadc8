"""Rate limits shared through Redis by every process: outbound platform limits (per bot, per
chat, per group) and upstream quotas. GCRA in one Lua script (limits.lua), so that a check
and its charge are one atomic round trip however many processes share a bucket."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.core.delivery import RetryLater

SCRIPT = Path(__file__).with_name("limits.lua").read_text()
# Waiting in the worker is fine for a short while; longer, and the task is retried later
# so the worker process is free for other deliveries.
MAX_INLINE_WAIT = 3.0


@dataclass(frozen=True)
class Bucket:
    key: str
    interval_ms: float  # the steady rate: one event per interval (exact: 30/s is 33.33 ms)
    burst: int  # events allowed at once


def acquire(redis_client: Any, buckets: list[Bucket], deadline: float = MAX_INLINE_WAIT) -> None:
    """Block until every bucket has room (charging them all), or raise RetryLater."""
    script = redis_client.register_script(SCRIPT)
    args: list[float] = []
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
