"""Per-upstream quotas enforced across the cluster: a request rate and a daily cap.

Over the rate, a call waits (briefly in the worker, otherwise as a task retry that keeps its
place in the queue); over the daily cap, the user is told clearly. Nothing is dropped.
"""

from __future__ import annotations

import time
from typing import Any

from bot.core import keys, limits
from bot.core.delivery import RetryLater
from config import Settings

MAX_INLINE_WAIT = 1.5


class QuotaWait(Exception):
    def __init__(self, provider: str, after: float):
        super().__init__(f"{provider} quota: wait {after:.2f}s")
        self.provider = provider
        self.after = after


class QuotaExhausted(Exception):
    def __init__(self, provider: str):
        super().__init__(f"{provider} daily quota used up")
        self.provider = provider


def acquire(redis_client: Any, settings: Settings, provider: str) -> None:
    limit = settings.upstream_rates.get(provider)
    if limit:
        bucket = limits.Bucket(keys.quota_rate(provider), limit.interval_ms, 1)
        try:
            limits.acquire(redis_client, [bucket], deadline=MAX_INLINE_WAIT)
        except RetryLater as exc:
            raise QuotaWait(provider, exc.after or 1.0) from None
    cap = settings.upstream_daily_caps.get(provider)
    if cap:
        day = time.strftime("%Y%m%d", time.gmtime())
        key = keys.quota_day(provider, day)
        pipe = redis_client.pipeline()
        pipe.incr(key)
        pipe.expire(key, 2 * 86400)
        used, _ = pipe.execute()
        if int(used) > cap:
            raise QuotaExhausted(provider)
