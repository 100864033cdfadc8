"""The tasks of every miss: `lookup` (call the provider, cache) then `deliver` (reply).

The lookup sends the reply itself when it can (`DELIVER_INLINE`); `deliver` sends whatever
could not go then, with retries, and only confirms the rest.

`lookup` always returns a reply — the answer, "not found", a stale answer while the upstream
is down, or a clear failure — so `deliver` always runs and the user never meets silence.
Requests coalesced behind a lookup (identical ones that arrived while it ran) get the same
reply through `deliver_batch` when it lands. Fan-out lookups (`/reviews`) replace themselves
with a chord: one task per source, each with its own retries and breaker, then a merge.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from typing import Any

import redis
from celery import Task, chord
from celery.exceptions import SoftTimeLimitExceeded

from bot import cache, keys, metrics, monitoring, registry
from bot.breaker import BreakerOpen
from bot.pipeline import age_text
from bot.quota import QuotaExhausted, QuotaWait
from bot.request import Reply, Request
from bot.senders import RetryLater, Undeliverable, sender_for
from bot.upstream import NotFound, PermanentError, RetryableError, Upstream
from config import get_settings
from tasks.app import app

log = logging.getLogger(__name__)

_redis: redis.Redis | None = None
_upstream: Upstream | None = None
FAN_OUT_CHUNK = 50
BAD_RESPONSE = (KeyError, TypeError, ValueError, IndexError)  # a provider choking on a body


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
        _upstream = Upstream(get_settings(), redis_client=worker_redis())
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


def _count(command: str, outcome: str, running: int = 0) -> None:
    """Per-minute lookup counters for /stats (lookup:<command>:ok|not_found|error|retry), and
    the running-lookups gauge moved by `running`. Best effort: the reply never waits on it."""
    key = keys.stats(int(time.time() // 60))
    pipe = worker_redis().pipeline(transaction=False)
    pipe.hincrby(key, f"lookup:{command}:{outcome}", 1)
    pipe.expire(key, 7200)
    if running:
        pipe.incrby(keys.RUNNING, running)
    try:
        pipe.execute()
    except (redis.RedisError, SoftTimeLimitExceeded) as exc:  # never at the cost of the reply
        log.warning("could not count a lookup for /stats: %s", type(exc).__name__)


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
    metrics.DEAD_LETTERS.labels(kind).inc()
    pipe = worker_redis().pipeline()
    pipe.lpush(keys.DEAD_LETTERS, json.dumps(entry))
    pipe.ltrim(keys.DEAD_LETTERS, 0, keys.DEAD_LETTERS_MAX - 1)
    pipe.execute()


# --- landing a lookup: cache, coalesced waiters ---------------------------------------------
def finish(
    command: registry.Command,
    request: dict[str, Any],
    params: dict[str, Any],
    reply: Reply,
    ttl: int,
    grace: int,
) -> dict[str, Any]:
    """Cache the reply (fresh for `ttl`, servable stale for `grace` more), answer every
    request coalesced behind this lookup, and return the leader's result."""
    cache_key = command.cache_key(params)
    pipe = worker_redis().pipeline(transaction=True)
    if ttl > 0:
        pipe.set(cache_key, cache.encode(reply.text, reply.kind, ttl), ex=ttl + grace)
    # Cache first, in the same transaction as draining the waiters: a request that arrives
    # after this sees the cache; one that arrived before is in the list.
    pipe.lrange(keys.waiters(cache_key), 0, -1)
    pipe.delete(keys.waiters(cache_key), keys.inflight(cache_key))
    results = pipe.execute()
    waiting = results[-2]
    _fan_out([json.loads(w) for w in waiting], reply)
    return _result(request, reply)


def finish_failure(
    command: registry.Command, request: dict[str, Any], params: dict[str, Any], text: str
) -> dict[str, Any]:
    """No fresh answer: a stale one still in the cache beats an error (stale-if-error)."""
    cached = worker_redis().get(command.cache_key(params))
    if isinstance(cached, bytes):
        _, body = cache.decode(cached)
        age = age_text(float(body.get("at", 0)))
        note = f"(as of {age}; {command.provider_name} is not answering right now)"
        reply = Reply(f"{body['text']}\n{note}", body.get("kind", "answer"))
    else:
        reply = Reply(text, "error")
    return finish(command, request, params, reply, ttl=0, grace=0)


def _fan_out(waiting: list[dict[str, Any]], reply: Reply) -> None:
    results = [_result(request, reply) for request in waiting]
    for start in range(0, len(results), FAN_OUT_CHUNK):
        deliver_batch.delay(results[start : start + FAN_OUT_CHUNK])


# --- lookup ---------------------------------------------------------------------------------
@app.task(bind=True, name="lookup", max_retries=None)
def lookup(
    self: Task, request: dict[str, Any], params: dict[str, Any], refresh: bool = False, failures: int = 0
) -> dict[str, Any] | None:
    req = Request.from_dict(request)
    command = registry.get(req.command)
    if command is None or not command.is_lookup:
        return _result(request, Reply(f"Unknown command /{req.command}.", "error"))
    if command.sources:
        return fan_out_sources(self, command, request, params, refresh)
    try:
        worker_redis().incr(keys.RUNNING)
        try:
            result, outcome = _lookup(self, command, req, request, params, refresh, failures)
        except BaseException:
            worker_redis().decr(keys.RUNNING)
            raise
    except redis.RedisError as exc:
        # Redis went away mid-lookup (restart, failover): run it again once it is back
        # rather than lose the reply; the retry waits in the broker.
        log.warning("%s: Redis unavailable in a lookup (%s), retrying", req.request_id, type(exc).__name__)
        raise self.retry(countdown=1, kwargs={"refresh": refresh, "failures": failures}) from None
    if not refresh:
        result = deliver_now(self, result)
    # Book-keeping after the reply is out, off the user's wait.
    _count(command.name, outcome, running=-1)
    return None if refresh else result


def _lookup(
    self: Task,
    command: registry.Command,
    req: Request,
    request: dict[str, Any],
    params: dict[str, Any],
    refresh: bool,
    failures: int,
) -> tuple[dict[str, Any], str]:
    """Call the provider and land the outcome; return the result and its /stats outcome."""
    settings = get_settings()
    name = command.provider_name
    assert command.provider is not None
    try:
        text = command.provider(params, upstream())
    except NotFound as exc:
        result = finish(
            command, request, params, Reply(str(exc), "not_found"), settings.NEGATIVE_CACHE_TTL, 0
        )
        return result, "not_found"
    except QuotaWait as exc:
        # Over the upstream's rate: wait in the queue, keeping the failure count as it was
        # (never longer than the backoff cap, which stays well under the visibility timeout).
        countdown = min(exc.after, settings.LOOKUP_RETRY_BACKOFF_MAX)
        raise self.retry(countdown=countdown, kwargs={"refresh": refresh, "failures": failures}) from None
    except QuotaExhausted:
        result = finish_failure(
            command, request, params, f"{name}'s daily quota is used up. Please try again tomorrow."
        )
        return result, "error"
    except BreakerOpen as exc:
        wait = max(1, math.ceil(exc.retry_in))
        result = finish_failure(
            command, request, params, f"{name} is unavailable right now, try again in {wait} s."
        )
        return result, "error"
    except (RetryableError, SoftTimeLimitExceeded, *BAD_RESPONSE) as exc:
        if isinstance(exc, RetryableError):
            error = exc
        else:
            kind = "timeout" if isinstance(exc, SoftTimeLimitExceeded) else "bad_response"
            error = RetryableError(name, kind, repr(exc)[:200])
        failures += 1
        if failures <= settings.LOOKUP_MAX_RETRIES:
            countdown = backoff(
                failures - 1,
                settings.LOOKUP_RETRY_BACKOFF,
                settings.LOOKUP_RETRY_BACKOFF_MAX,
                error.retry_after,
            )
            log.warning(
                "%s: %s failed (%s), retry %d in %.2fs", req.request_id, name, error.kind, failures, countdown
            )
            _count(command.name, "retry")
            metrics.RETRIES.labels(error.provider).inc()
            raise self.retry(countdown=countdown, kwargs={"refresh": refresh, "failures": failures}) from None
        log.error("%s: %s failed %d times, giving up: %s", req.request_id, name, failures, error)
        monitoring.report(
            f"{error.provider} lookup failed after {failures} tries: {error.kind}",
            ["lookup-exhausted", error.provider, error.kind],
            platform=req.platform,
            command=req.command,
            provider=error.provider,
            request_id=req.request_id,
            attempts=failures,
        )
        _dead_letter(request, params, str(error), error.kind, failures)
        text = f"Sorry, {name} is not answering right now (tried {failures} times). Please try again later."
        result = finish_failure(command, request, params, text)
        return result, "error"
    except PermanentError as exc:
        log.error("%s: %s refused the request: %s", req.request_id, name, exc)
        text = f"Sorry, {name} could not answer that ({exc.kind.replace('_', ' ')})."
        result = finish_failure(command, request, params, text)
        return result, "error"
    except Exception as exc:  # a bug in a provider must not leave the user in silence
        log.exception("%s: %s lookup crashed", req.request_id, name)
        monitoring.capture(exc, platform=req.platform, command=req.command, request_id=req.request_id)
        _dead_letter(request, params, repr(exc)[:500], "crash", failures + 1)
        result = finish_failure(
            command, request, params, "Sorry, something went wrong with that lookup. It has been logged."
        )
        return result, "error"
    log.info("%s: lookup /%s answered after %d failed tries", req.request_id, command.name, failures)
    result = finish(command, request, params, Reply(text, "answer"), command.ttl(), settings.CACHE_GRACE)
    return result, "ok"


# --- fan-out lookups (/reviews): one task per source, then a merge --------------------------
def fan_out_sources(
    self: Task, command: registry.Command, request: dict[str, Any], params: dict[str, Any], refresh: bool
) -> Any:
    from bot.lookups import reviews

    enabled = reviews.enabled_sources(get_settings())
    if not enabled:
        result = finish_failure(command, request, params, reviews.NO_KEYS)
        return None if refresh else result
    header = [review_source.s(name, params) for name in enabled]
    body = merge_reviews.s(request, params, refresh)
    # The chain's deliver (if any) follows the merge: replace() carries it over.
    return self.replace(chord(header, body))


@app.task(bind=True, name="review_source", max_retries=None, ignore_result=False)
def review_source(self: Task, source: str, params: dict[str, Any], failures: int = 0) -> dict[str, Any]:
    """One review API. Never fails the chord: after its retries it reports what went wrong."""
    from bot.lookups import reviews

    settings = get_settings()
    try:
        return {"source": source, "places": reviews.fetch(source, params, upstream())}
    except NotFound:
        return {"source": source, "places": []}
    except QuotaWait as exc:
        countdown = min(exc.after, settings.LOOKUP_RETRY_BACKOFF_MAX)
        raise self.retry(countdown=countdown, kwargs={"failures": failures}) from None
    except QuotaExhausted:
        return {"source": source, "error": "over its daily quota"}
    except BreakerOpen:
        return {"source": source, "error": "unavailable"}
    except (RetryableError, SoftTimeLimitExceeded, *BAD_RESPONSE) as exc:
        failures += 1
        kind = exc.kind if isinstance(exc, RetryableError) else "bad_response"
        if failures <= settings.LOOKUP_MAX_RETRIES:
            after = exc.retry_after if isinstance(exc, RetryableError) else None
            countdown = backoff(
                failures - 1, settings.LOOKUP_RETRY_BACKOFF, settings.LOOKUP_RETRY_BACKOFF_MAX, after
            )
            raise self.retry(countdown=countdown, kwargs={"failures": failures}) from None
        return {"source": source, "error": "timed out" if kind == "timeout" else "not answering"}
    except PermanentError as exc:
        return {"source": source, "error": f"refused ({exc.kind.replace('_', ' ')})"}


@app.task(bind=True, name="merge_reviews")
def merge_reviews(
    self: Task,
    results: list[dict[str, Any]],
    request: dict[str, Any],
    params: dict[str, Any],
    refresh: bool = False,
) -> dict[str, Any] | None:
    from bot.lookups import reviews

    settings = get_settings()
    command = registry.get("reviews")
    assert command is not None
    text, answered = reviews.merge(results, params)
    if answered:
        _count(command.name, "ok")
        result = finish(command, request, params, Reply(text, "answer"), command.ttl(), settings.CACHE_GRACE)
    else:
        _count(command.name, "error")
        result = finish_failure(command, request, params, text)
    return None if refresh else deliver_now(self, result)


# --- delivery ---------------------------------------------------------------------------------
# What a sender raises when trying again later may help: the platform's back-pressure or an
# outage (RetryLater), Redis, the network (requests' connection errors are OSErrors).
RETRYABLE = (RetryLater, redis.RedisError, OSError)


def _unpack(result: dict[str, Any]) -> tuple[Request, Reply]:
    reply = result["reply"]
    return Request.from_dict(result["request"]), Reply(reply["text"], reply.get("kind", "answer"))


def _reason(exc: BaseException) -> str:
    # str() of a connection error can hold a URL with a bot token: only the class name.
    return exc.reason if isinstance(exc, RetryLater) else type(exc).__name__


def _send(req: Request, reply: Reply) -> None:
    """Send a reply now. A platform's final refusal (the user blocked the bot) is logged and
    counted here; what may go later (RETRYABLE) is raised for the caller to schedule."""
    try:
        sender_for(req.platform)(worker_redis(), req, reply)
    except Undeliverable as exc:
        log.warning("%s: not deliverable on %s: %s", req.request_id, req.platform, exc)
        metrics.DELIVERIES.labels(req.platform, "undeliverable").inc()
        return
    log.info("%s: reply delivered on %s", req.request_id, req.platform)
    metrics.DELIVERIES.labels(req.platform, "sent").inc()
    if req.received_at:
        metrics.REPLY_LATENCY.labels(req.platform, "worker").observe(max(0.0, time.time() - req.received_at))


def deliver_now(task: Task, result: dict[str, Any]) -> dict[str, Any]:
    """The fast path of lookup → deliver: the lookup sends the reply itself, sparing the user
    a broker hop (~5 ms, bench/miss.py). Whatever cannot go at once — back-pressure, an outage,
    the time limit — is left to the chained `deliver` task, with its retries and dead letters.
    Once sent here, the rest of the chain is dropped when it is that `deliver` alone (and a
    `deliver` that runs anyway sees the result marked and does nothing). A lookup run twice
    (its worker lost before the ack) cannot send twice: senders mark each part sent."""
    if not get_settings().DELIVER_INLINE:
        return result
    req, reply = _unpack(result)
    try:
        _send(req, reply)
    except (*RETRYABLE, SoftTimeLimitExceeded) as exc:
        log.info("%s: sending left to the deliver task (%s)", req.request_id, _reason(exc))
        return result
    except Exception:  # a sender bug: the deliver task meets it again and reports it
        log.exception("%s: sending from the lookup failed", req.request_id)
        return result
    chained = task.request.chain
    if chained and len(chained) == 1 and chained[0].get("task") == deliver.name:
        task.request.chain = None  # Celery reads it after the task returns
    return {**result, "delivered": True}


@app.task(bind=True, name="deliver", max_retries=None)
def deliver(self: Task, result: dict[str, Any] | None) -> None:
    """Send the reply; retried on platform back-pressure or outages, never duplicated
    (senders keep per-request markers), dead-lettered when it finally cannot be sent."""
    if result is None or result.get("delivered"):
        return  # a refresh (nobody waits), or the lookup already sent it
    settings = get_settings()
    req, reply = _unpack(result)
    attempts = self.request.retries + 1
    try:
        _send(req, reply)
    except RETRYABLE as exc:
        reason = _reason(exc)
        if self.request.retries < settings.DELIVER_MAX_RETRIES:
            after = exc.after if isinstance(exc, RetryLater) else None
            countdown = backoff(
                self.request.retries, settings.LOOKUP_RETRY_BACKOFF, settings.LOOKUP_RETRY_BACKOFF_MAX, after
            )
            log.warning(
                "%s: delivery deferred (%s), retry %d in %.2fs", req.request_id, reason, attempts, countdown
            )
            raise self.retry(countdown=countdown) from None
        log.error("%s: delivery failed for good after %d tries: %s", req.request_id, attempts, reason)
        metrics.DELIVERIES.labels(req.platform, "failed").inc()
        monitoring.report(
            f"delivery to {req.platform} failed: {reason}",
            ["delivery-failed", req.platform, reason.split(":")[0]],
            platform=req.platform,
            command=req.command,
            request_id=req.request_id,
        )
        _dead_letter(result["request"], {"reply": reply.text}, f"delivery: {reason}", "delivery", attempts)


@app.task(name="deliver_batch")
def deliver_batch(results: list[dict[str, Any]]) -> None:
    """The same reply to many coalesced requests; any that cannot go now get their own
    `deliver` task with its retries, so one slow chat holds up nobody else."""
    for result in results:
        try:
            _send(*_unpack(result))
        except RETRYABLE:
            deliver.apply_async((result,), countdown=get_settings().LOOKUP_RETRY_BACKOFF)
