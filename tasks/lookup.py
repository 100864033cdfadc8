"""The two tasks of every miss: `lookup` (call the provider, cache) then `deliver` (reply).

`lookup` always returns a reply, even when the upstream failed for good, so `deliver` always
runs and the user never meets silence.
"""

from __future__ import annotations

import json
import logging
import random
import time
from typing import Any

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from bot import keys, registry
from bot.request import Reply, Request
from bot.senders import RetryLater, Undeliverable, sender_for
from bot.upstream import NotFound, PermanentError, RetryableError, Upstream
from config import get_settings
from tasks.app import app

log = logging.getLogger(__name__)

_redis: redis.Redis | None = None
_upstream: Upstream | None = None


def worker_redis() -> redis.Redis:
    """One client per worker process (redis-py pools reconnect after fork by pid)."""
    global _redis
    if _redis is None:
        settings = get_settings()
        _redis = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=settings.REDIS_TIMEOUT,
            socket_connect_timeout=settings.REDIS_TIMEOUT,
            health_check_interval=30,
        )
    return _redis


def upstream() -> Upstream:
    global _upstream
    if _upstream is None:
        _upstream = Upstream(get_settings())
    return _upstream


def backoff(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter (half fixed, half random) and `Retry-After` honoured.

    Celery's own `retry_backoff` works in whole seconds; tests and fast upstreams want less.
    A `Retry-After` beyond the cap is clipped to it, since a longer countdown on the Redis
    broker risks redelivery after the visibility timeout.
    """
    delay = min(cap, base * (2**attempt))
    delay = random.uniform(delay / 2, delay)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def _result(request: dict[str, Any], reply: Reply) -> dict[str, Any]:
    return {"request": request, "reply": {"text": reply.text, "kind": reply.kind}}


def _cache(key: str, reply: Reply, ttl: int) -> None:
    """The gate hands this JSON back on a hit; `at` lets a later answer show its age."""
    if ttl > 0:
        worker_redis().set(
            key, json.dumps({"text": reply.text, "kind": reply.kind, "at": time.time()}), ex=ttl
        )


def _dead_letter(
    request: dict[str, Any], params: dict[str, Any], error: str, kind: str, attempts: int
) -> None:
    entry = {
        "id": request["request_id"],
        "request": request,
        "params": params,
        "error": error,
        "kind": kind,
        "attempts": attempts,
        "at": time.time(),
    }
    pipe = worker_redis().pipeline()
    pipe.lpush(keys.DEAD_LETTERS, json.dumps(entry))
    pipe.ltrim(keys.DEAD_LETTERS, 0, keys.DEAD_LETTERS_MAX - 1)
    pipe.execute()


@app.task(bind=True, name="lookup", max_retries=None)
def lookup(self: Task, request: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    settings = get_settings()
    req = Request.from_dict(request)
    command = registry.get(req.command)
    if command is None or command.provider is None:
        return _result(request, Reply(f"Unknown command /{req.command}.", "error"))
    attempts = self.request.retries + 1
    stats = worker_redis().pipeline(transaction=False)
    stats.incr(keys.INFLIGHT)
    stats.execute()
    try:
        return _run(self, req, request, params, command, settings, attempts)
    finally:
        counters = worker_redis().pipeline(transaction=False)
        counters.decr(keys.INFLIGHT)
        counters.execute()


def _count(command: str, outcome: str) -> None:
    """Per-minute lookup counters for /stats (lookup:<command>:ok|not_found|error|retry)."""
    key = keys.stats(int(time.time() // 60))
    pipe = worker_redis().pipeline(transaction=False)
    pipe.hincrby(key, f"lookup:{command}:{outcome}", 1)
    pipe.expire(key, 7200)
    pipe.execute()


def _run(
    self: Task,
    req: Request,
    request: dict[str, Any],
    params: dict[str, Any],
    command: registry.Command,
    settings: Any,
    attempts: int,
) -> dict[str, Any]:
    assert command.provider is not None
    name = command.provider_name
    try:
        text = command.provider(params, upstream())
    except NotFound as exc:
        reply = Reply(str(exc), "not_found")
        _cache(command.cache_key(params), reply, settings.NEGATIVE_CACHE_TTL)
        _count(command.name, "not_found")
        return _result(request, reply)
    except (RetryableError, SoftTimeLimitExceeded, KeyError, TypeError, ValueError, IndexError) as exc:
        error = (
            exc
            if isinstance(exc, RetryableError)
            else RetryableError(
                name, "timeout" if isinstance(exc, SoftTimeLimitExceeded) else "bad_response", repr(exc)[:200]
            )
        )
        if self.request.retries < settings.LOOKUP_MAX_RETRIES:
            countdown = backoff(
                self.request.retries,
                settings.LOOKUP_RETRY_BACKOFF,
                settings.LOOKUP_RETRY_BACKOFF_MAX,
                error.retry_after,
            )
            log.warning(
                "%s: %s failed (%s), retry %d in %.2fs", req.request_id, name, error.kind, attempts, countdown
            )
            raise self.retry(countdown=countdown, exc=error) from None
        log.error("%s: %s failed %d times, giving up: %s", req.request_id, name, attempts, error)
        _dead_letter(request, params, str(error), error.kind, attempts)
        _count(command.name, "error")
        return _result(
            request,
            Reply(
                f"Sorry, {name} is not answering right now (tried {attempts} times). Please try again later.",
                "error",
            ),
        )
    except PermanentError as exc:
        log.error("%s: %s refused the request: %s", req.request_id, name, exc)
        _count(command.name, "error")
        return _result(
            request, Reply(f"Sorry, {name} could not answer that ({exc.kind.replace('_', ' ')}).", "error")
        )
    except Exception as exc:  # a bug in a provider must not leave the user in silence
        log.exception("%s: %s lookup crashed", req.request_id, name)
        _dead_letter(request, params, repr(exc)[:500], "crash", attempts)
        _count(command.name, "error")
        return _result(
            request, Reply("Sorry, something went wrong with that lookup. It has been logged.", "error")
        )

    reply = Reply(text, "answer")
    _cache(command.cache_key(params), reply, command.ttl())
    _count(command.name, "ok")
    return _result(request, reply)


@app.task(bind=True, name="deliver", max_retries=None)
def deliver(self: Task, result: dict[str, Any]) -> None:
    """Send the reply; retried on platform back-pressure or outages, never duplicated
    (senders keep per-request markers), dead-lettered when it finally cannot be sent."""
    settings = get_settings()
    req = Request.from_dict(result["request"])
    reply = Reply(result["reply"]["text"], result["reply"].get("kind", "answer"))
    attempts = self.request.retries + 1
    try:
        sender_for(req.platform)(worker_redis(), req, reply)
    except Undeliverable as exc:
        log.warning("%s: not deliverable on %s: %s", req.request_id, req.platform, exc)
    except (RetryLater, redis.RedisError, OSError) as exc:
        # OSError covers requests' connection errors; str() of those can hold a URL with a
        # bot token, so only the class name is logged.
        reason = exc.reason if isinstance(exc, RetryLater) else type(exc).__name__
        if self.request.retries < settings.DELIVER_MAX_RETRIES:
            after = exc.after if isinstance(exc, RetryLater) else None
            countdown = backoff(
                self.request.retries, settings.LOOKUP_RETRY_BACKOFF, settings.LOOKUP_RETRY_BACKOFF_MAX, after
            )
            log.warning(
                "%s: delivery deferred (%s), retry %d in %.2fs", req.request_id, reason, attempts, countdown
            )
            raise self.retry(countdown=countdown, exc=None) from None
        log.error("%s: delivery failed for good after %d tries: %s", req.request_id, attempts, reason)
        _dead_letter(result["request"], {"reply": reply.text}, f"delivery: {reason}", "delivery", attempts)
