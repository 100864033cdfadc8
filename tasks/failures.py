"""One failure classifier and one backoff for every task: what went wrong, and what to do.

A provider (or one source of a fan-out) raises; `classify` sorts the exception into what the
task does next, so the lookup and each fan-out source share one ladder:
- `not_found`: the answer is "no such thing" (cached briefly);
- `wait`: over the upstream's quota rate: try again after `after`, the failure count unchanged;
- `exhausted`: over the daily quota: tell the user;
- `open`: the breaker is open: tell the user when to try (`after`);
- `retry`: timeout, connection error, 5xx, 429, a body the provider could not read, the soft
  time limit: retry with backoff (`after` is the upstream's Retry-After, if it said);
- `refused`: another 4xx: retrying cannot help;
- `crash`: a bug in our code: report it, never leave the user in silence.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from celery.exceptions import SoftTimeLimitExceeded

from bot.upstream.breaker import BreakerOpen
from bot.upstream.client import NotFound, PermanentError, RetryableError
from bot.upstream.quota import QuotaExhausted, QuotaWait
from config import get_settings

BAD_RESPONSE = (KeyError, TypeError, ValueError, IndexError)  # a provider choking on a body


@dataclass(frozen=True)
class Failure:
    kind: str  # not_found, wait, exhausted, open, retry, refused, crash
    error: Exception
    reason: str = ""  # for retry and refused: timeout, connection, http_503, bad_response…
    after: float | None = None  # seconds to wait, where known


def classify(exc: Exception, provider: str = "") -> Failure:
    if isinstance(exc, NotFound):
        return Failure("not_found", exc)
    if isinstance(exc, QuotaWait):
        return Failure("wait", exc, after=min(exc.after, get_settings().LOOKUP_RETRY_BACKOFF_MAX))
    if isinstance(exc, QuotaExhausted):
        return Failure("exhausted", exc)
    if isinstance(exc, BreakerOpen):
        return Failure("open", exc, after=exc.retry_in)
    if isinstance(exc, RetryableError):
        return Failure("retry", exc, exc.kind, exc.retry_after)
    if isinstance(exc, SoftTimeLimitExceeded):
        return Failure("retry", RetryableError(provider, "timeout", repr(exc)[:200]), "timeout")
    if isinstance(exc, BAD_RESPONSE):
        return Failure("retry", RetryableError(provider, "bad_response", repr(exc)[:200]), "bad_response")
    if isinstance(exc, PermanentError):
        return Failure("refused", exc, exc.kind)
    return Failure("crash", exc)


def within_quota_wait(since: float, after: float | None) -> bool:
    """Whether a lookup asked at `since` (unix time; 0: unknown) may wait `after` more seconds
    for an upstream's rate quota: at most QUOTA_WAIT_MAX from the user's message in all."""
    if not since:
        return True
    return time.time() + (after or 0) - since <= get_settings().QUOTA_WAIT_MAX


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before try `attempt + 1`: exponential with jitter (half fixed, half random),
    from LOOKUP_RETRY_BACKOFF up to LOOKUP_RETRY_BACKOFF_MAX, `Retry-After` honoured.

    Celery's own `retry_backoff` works in whole seconds; tests and fast upstreams want less.
    A `Retry-After` beyond the cap is clipped to it, since a longer countdown on the Redis
    broker risks redelivery after the visibility timeout.
    """
    settings = get_settings()
    cap = settings.LOOKUP_RETRY_BACKOFF_MAX
    delay = min(cap, settings.LOOKUP_RETRY_BACKOFF * (2**attempt))
    delay = random.uniform(delay / 2, delay)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay
