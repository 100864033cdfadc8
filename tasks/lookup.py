"""The `lookup` task: call the provider, land the outcome (tasks/landing.py), send the reply
(tasks/deliver.py).

`lookup` always returns a reply — the answer, "not found", a stale answer while the upstream
is down, or a clear failure — so the chained `deliver` always has something to send and the
user never meets silence. A fan-out lookup (`/reviews`) replaces itself with one task per
source and a merge (tasks/fanout.py).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from celery import Task, chain, signals
from celery.exceptions import Retry

from bot.commands import registry
from bot.commands.registry import Command
from bot.core import keys, phrases
from bot.core.i18n import t
from bot.core.request import Reply, Request
from bot.ops import metrics, sentry
from bot.upstream.client import NotFound, RetryableError
from config import get_settings
from tasks import fanout, leases
from tasks.app import app
from tasks.deliver import answer_and_release, deliver, deliver_batch
from tasks.failures import backoff, classify, within_quota_wait
from tasks.landing import finish, finish_failure
from tasks.records import count, dead_letter, result
from tasks.runtime import upstream, worker_redis

log = logging.getLogger(__name__)


@app.task(bind=True, name="lookup", max_retries=None)
def lookup(
    self: Task, request: dict[str, Any], params: dict[str, Any], refresh: bool = False, failures: int = 0
) -> dict[str, Any] | None:
    req = Request.from_dict(request)
    command = registry.get(req.command)
    if command is None or not command.is_lookup:
        return result(request, Reply(t("Unknown command /{name}.", name=req.command[:32]), "error"))
    if not refresh:  # a refresh has nobody waiting: it needs no lease
        if leases.landed(req.request_id):
            return None  # answered already: the broker redelivered a message we re-ran
        leases.take(request, params)
    if command.fan_out is not None:
        if not refresh:
            leases.wait(req.request_id, 0)  # its sources and merge hold the lease from here
        # Returns only when no source is configured (else the task is replaced by a chord).
        answered = fanout.start(self, command, request, params, refresh)
        return None if refresh else answer_and_release(self, answered)
    try:
        worker_redis().incr(keys.RUNNING)
        try:
            landed, outcome = _lookup(self, command, req, request, params, refresh, failures)
        except BaseException:
            worker_redis().decr(keys.RUNNING)
            raise
    except redis.RedisError as exc:
        # Redis went away mid-lookup (restart, failover): run it again once it is back
        # rather than lose the reply; the retry waits in the broker (the lease expires).
        log.warning("%s: Redis unavailable in a lookup (%s), retrying", req.request_id, type(exc).__name__)
        raise self.retry(countdown=1, kwargs={"refresh": refresh, "failures": failures}) from None
    except Retry as retry:
        if not refresh:
            leases.wait_for_retry(req.request_id, retry)
        raise
    # Book-keeping after the reply is out, off the user's wait: the lease and the /stats
    # counts in one round trip.
    bookkeeping = worker_redis().pipeline(transaction=False)
    if not refresh:
        landed = answer_and_release(self, landed, bookkeeping)
    count(command.name, outcome, running=-1, pipe=bookkeeping)
    return None if refresh else landed


def republish(lease: str, leased: dict[str, Any]) -> None:
    """A lookup or a reply batch whose worker was lost, again: a lookup with the same request
    id, then deliver; a batch under the same lease."""
    if "batch" in leased:
        deliver_batch.apply_async((leased["batch"],), {"lease": lease})
    else:
        chain(lookup.s(leased["request"], leased["params"]), deliver.s()).apply_async()


@signals.worker_ready.connect
def _start_sweeping(**_: object) -> None:
    """Every worker's main process sweeps for lookups whose worker was lost."""
    global _sweeper
    _sweeper = leases.start_sweeper(republish)


@signals.worker_shutdown.connect
def _stop_sweeping(**_: object) -> None:
    if _sweeper is not None:
        _sweeper.set()


_sweeper: threading.Event | None = None


def _lookup(
    self: Task,
    command: Command,
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
    except Exception as exc:
        failure = classify(exc, name)
    else:
        log.info("%s: lookup /%s answered after %d failed tries", req.request_id, command.name, failures)
        landed = finish(command, request, params, Reply(text, "answer"), command.ttl(), settings.CACHE_GRACE)
        return landed, "ok"

    retry_kwargs = {"refresh": refresh, "failures": failures}
    if failure.kind == "not_found":
        assert isinstance(failure.error, NotFound)
        reply = Reply(failure.error.message, "not_found")
        return finish(command, request, params, reply, settings.NEGATIVE_CACHE_TTL, 0), "not_found"
    if failure.kind == "wait" and within_quota_wait(req.received_at, failure.after):
        # Over the upstream's rate: wait in the queue, keeping the failure count as it was.
        raise self.retry(countdown=failure.after, kwargs=retry_kwargs) from None
    if failure.kind == "wait":  # waited QUOTA_WAIT_MAX already: say so rather than wait on
        text = phrases.busy(name, failure.after or 1)
    elif failure.kind == "exhausted":
        text = t(
            "{provider}'s daily quota is used up. Please try again tomorrow.", provider=phrases.provider(name)
        )
    elif failure.kind == "open":
        text = phrases.unavailable_for(name, failure.after or 1)
    elif failure.kind == "retry":
        error = failure.error
        assert isinstance(error, RetryableError)
        failures += 1
        if failures <= settings.LOOKUP_MAX_RETRIES:
            countdown = backoff(failures - 1, error.retry_after)
            log.warning(
                "%s: %s failed (%s), retry %d in %.2fs", req.request_id, name, error.kind, failures, countdown
            )
            count(command.name, "retry")
            metrics.RETRIES.labels(error.provider).inc()
            retry_kwargs["failures"] = failures
            raise self.retry(countdown=countdown, kwargs=retry_kwargs) from None
        log.error("%s: %s failed %d times, giving up: %s", req.request_id, name, failures, error)
        sentry.report(
            f"{error.provider} lookup failed after {failures} tries: {error.kind}",
            ["lookup-exhausted", error.provider, error.kind],
            platform=req.platform,
            command=req.command,
            provider=error.provider,
            request_id=req.request_id,
            attempts=failures,
        )
        dead_letter(request, params, str(error), error.kind, failures)
        text = t(
            "Sorry, {provider} is not answering right now (tried {n} times). Please try again later.",
            provider=phrases.provider(name),
            n=failures,
        )
    elif failure.kind == "refused":
        log.error("%s: %s refused the request: %s", req.request_id, name, failure.error)
        text = t(
            "Sorry, {provider} could not answer that ({reason}).",
            provider=phrases.provider(name),
            reason=failure.reason.replace("_", " "),
        )
    else:  # a bug in a provider must not leave the user in silence
        log.error("%s: %s lookup crashed", req.request_id, name, exc_info=failure.error)
        sentry.capture(failure.error, platform=req.platform, command=req.command, request_id=req.request_id)
        dead_letter(request, params, repr(failure.error)[:500], "crash", failures + 1)
        text = phrases.CRASHED
    return finish_failure(command, request, params, text), "error"
