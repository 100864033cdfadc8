"""Sending replies from workers: inline from the lookup when it can, else the `deliver` task
with its retries; `deliver_batch` answers requests coalesced behind one lookup.

Senders are the platforms' worker halves (bot/platforms/*/sender.py): plain HTTP, no SDK.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from typing import Any

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from bot.commands import registry
from bot.commands.registry import UsageError
from bot.core import i18n, keys
from bot.core.delivery import RetryLater, Undeliverable
from bot.core.request import Reply, Request
from bot.ops import metrics, sentry
from bot.platforms import sender_for
from config import get_settings
from tasks import leases
from tasks.app import app
from tasks.failures import backoff
from tasks.records import dead_letter, notified, result, unpack
from tasks.runtime import worker_redis

log = logging.getLogger(__name__)

FAN_OUT_CHUNK = 50
PAUSING = ("blocked", "gone")  # refusals that pause a subscription (bot/core/delivery.py)
# What a sender raises when trying again later may help: the platform's back-pressure or an
# outage (RetryLater), Redis, the network (requests' connection errors are OSErrors).
RETRYABLE = (RetryLater, redis.RedisError, OSError)


def _reason(exc: BaseException) -> str:
    # str() of a connection error can hold a URL with a bot token: only the class name.
    return exc.reason if isinstance(exc, RetryLater) else type(exc).__name__


def languages_of(requests: list[Request]) -> list[str]:
    """The language to answer each in: the user's /lang choice as of now (it may have changed
    while the lookup ran, and requests coalesced behind a lookup were stored before the gate
    read it), else the platform's. One round trip for a whole batch."""
    pipe = worker_redis().pipeline(transaction=False)
    for req in requests:
        pipe.hget(keys.prefs(req.user_key), keys.LANG_FIELD)
    return [
        i18n.choose(chosen.decode() if isinstance(chosen, bytes) else chosen, req.locale)
        for req, chosen in zip(requests, pipe.execute(), strict=True)
    ]


def answer_key(req: Request) -> str | None:
    """The cache key of the lookup a request asked (a Refresh press names it; a command's
    arguments are parsed again, as the bot did), for the buttons under its answer."""
    if req.meta.get("cache_key"):
        return str(req.meta["cache_key"])
    command = registry.get(req.command)
    if command is None or not command.is_lookup:
        return None
    try:
        return command.cache_key(command.run_parser(req.args))
    except UsageError:
        return None


def send(req: Request, reply: Reply, language: str | None = None, count: bool = True) -> bool:
    """Send a reply now, in the reader's language (`language`: already looked up). A
    platform's final refusal (the user blocked the bot) is logged and counted here; what may
    go later (RETRYABLE) is raised for the caller to schedule. True when it was sent; a
    subscription's notification is counted for /stats unless `count` is off (a batch counts
    its own at once)."""
    try:
        reply = reply.with_buttons(answer_key(req))
        if not isinstance(reply.text, str) or reply.buttons:
            reply = reply.rendered(language or languages_of([req])[0])
        sender_for(req.platform)(worker_redis(), req, reply)
    except Undeliverable as exc:
        log.warning("%s: not deliverable on %s: %s", req.request_id, req.platform, exc)
        metrics.DELIVERIES.labels(req.platform, "undeliverable").inc()
        if req.meta.get("subscription") and exc.why in PAUSING:  # no more ticks for that chat
            pipe = worker_redis().pipeline(transaction=True)
            pipe.hset(keys.subscription(req.meta["subscription"]), "state", f"paused:{exc.why}")
            pipe.zrem(keys.SUBSCRIPTIONS_DUE, req.meta["subscription"])
            pipe.execute()
        return False
    log.info("%s: reply delivered on %s", req.request_id, req.platform)
    metrics.DELIVERIES.labels(req.platform, "sent").inc()
    if req.received_at:
        metrics.REPLY_LATENCY.labels(req.platform, "worker").observe(max(0.0, time.time() - req.received_at))
    if count and req.meta.get("subscription"):
        notified(req.platform)
    return True


def deliver_now(task: Task, landed: dict[str, Any]) -> dict[str, Any]:
    """The fast path of lookup → deliver: the lookup sends the reply itself, sparing the user
    a broker hop (~5 ms, bench/miss.py). Whatever cannot go at once — back-pressure, an outage,
    the time limit — is left to the chained `deliver` task, with its retries and dead letters.
    Once sent here, the rest of the chain is dropped when it is that `deliver` alone (and a
    `deliver` that runs anyway sees the result marked and does nothing). A lookup run twice
    (its worker lost before the ack) cannot send twice: senders mark each part sent."""
    if not get_settings().DELIVER_INLINE:
        return landed
    req, reply = unpack(landed)
    try:
        send(req, reply)
    except (*RETRYABLE, SoftTimeLimitExceeded) as exc:
        log.info("%s: sending left to the deliver task (%s)", req.request_id, _reason(exc))
        return landed
    except Exception:  # a sender bug: the deliver task meets it again and reports it
        log.exception("%s: sending from the lookup failed", req.request_id)
        return landed
    chained = task.request.chain
    if chained and len(chained) == 1 and chained[0].get("task") == deliver.name:
        task.request.chain = None  # Celery reads it after the task returns
    return {**landed, "delivered": True}


def answer_and_release(task: Task, landed: dict[str, Any], pipe: Any = None) -> dict[str, Any]:
    """The end of every lookup someone waits for: send the reply now if it can go, then give
    the lookup's lease back (marked landed once the reply is out); with `pipe`, on the
    caller's pipeline (see leases.give_back)."""
    landed = deliver_now(task, landed)
    leases.give_back(str(landed["request"]["request_id"]), landed=bool(landed.get("delivered")), pipe=pipe)
    return landed


@app.task(bind=True, name="deliver", max_retries=None)
def deliver(self: Task, landed: dict[str, Any] | None) -> None:
    """Send the reply; retried on platform back-pressure or outages, never duplicated
    (senders keep per-request markers), dead-lettered when it finally cannot be sent."""
    if landed is None or landed.get("delivered"):
        return  # a refresh (nobody waits), or the lookup already sent it
    settings = get_settings()
    req, reply = unpack(landed)
    attempts = self.request.retries + 1
    try:
        send(req, reply)
    except RETRYABLE as exc:
        reason = _reason(exc)
        if self.request.retries < settings.DELIVER_MAX_RETRIES:
            countdown = backoff(self.request.retries, exc.after if isinstance(exc, RetryLater) else None)
            log.warning(
                "%s: delivery deferred (%s), retry %d in %.2fs", req.request_id, reason, attempts, countdown
            )
            raise self.retry(countdown=countdown) from None
        log.error("%s: delivery failed for good after %d tries: %s", req.request_id, attempts, reason)
        metrics.DELIVERIES.labels(req.platform, "failed").inc()
        sentry.report(
            f"delivery to {req.platform} failed: {reason}",
            ["delivery-failed", req.platform, reason.split(":")[0]],
            platform=req.platform,
            command=req.command,
            request_id=req.request_id,
        )
        dead_letter(landed["request"], {"reply": reply.text}, f"delivery: {reason}", "delivery", attempts)


@app.task(name="deliver_batch")
def deliver_batch(results: list[dict[str, Any]], lease: str = "") -> None:
    """Replies to many requests (those coalesced behind a lookup, a tick's notifications); any
    that cannot go now get their own `deliver` task with its retries, so one slow chat holds
    up nobody else. Under a lease (tasks/leases.py): a worker lost whole mid-batch is
    replaced within LOOKUP_LEASE, not the Redis broker's visibility timeout; the senders'
    markers skip what it had sent."""
    if lease and leases.landed(lease):
        return  # the broker's late redelivery of a batch the sweep re-published and finished
    if lease:
        leases.take_batch(lease, results)
    try:
        _deliver_all(results)
    finally:
        if lease:
            leases.give_back(lease, landed=True)


def _deliver_all(results: list[dict[str, Any]]) -> None:
    unpacked = [unpack(landed) for landed in results]
    languages = languages_of([req for req, _ in unpacked])
    told: Counter[str] = Counter()  # subscription notifications sent, per platform
    for landed, (req, reply), language in zip(results, unpacked, languages, strict=True):
        try:
            if send(req, reply, language, count=False) and req.meta.get("subscription"):
                told[req.platform] += 1
        except RETRYABLE:
            deliver.apply_async((landed,), countdown=get_settings().LOOKUP_RETRY_BACKOFF)
    for platform, count in told.items():
        notified(platform, count)


def answer_waiters(waiting: list[dict[str, Any]], reply: Reply) -> None:
    """The reply of a landed lookup to every request coalesced behind it, in batches."""
    fan_out([result(request, reply) for request in waiting])


def fan_out(results: list[dict[str, Any]]) -> None:
    """Replies to many requests, FAN_OUT_CHUNK to a `deliver_batch`, each under a lease."""
    for start in range(0, len(results), FAN_OUT_CHUNK):
        deliver_batch.delay(results[start : start + FAN_OUT_CHUNK], lease=f"batch:{uuid.uuid4().hex}")
