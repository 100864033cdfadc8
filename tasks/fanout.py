"""Fan-out lookups (`/reviews`): one task per source, each with its own retries, breaker and
quota, then a merge. What to ask and how to merge is the command's declaration
(`registry.fan_out`); this module only runs it."""

from __future__ import annotations

from typing import Any

from celery import Task, chord
from celery.exceptions import Retry

from bot.commands import registry
from bot.commands.registry import Command, FanOut
from bot.core.i18n import t
from bot.core.request import Reply
from bot.ops import sentry
from config import get_settings
from tasks import leases
from tasks.app import app
from tasks.deliver import answer_and_release
from tasks.failures import backoff, classify, within_quota_wait
from tasks.landing import finish, finish_failure
from tasks.records import count
from tasks.runtime import upstream

# What a source reports for each failure, in place of its places.
SOURCE_ERRORS = {
    "exhausted": t("over its daily quota"),
    "open": t("unavailable"),
    "crash": t("not answering"),
}


def _spread(command_name: str) -> tuple[Command, FanOut]:
    command = registry.get(command_name)
    assert command is not None and command.fan_out is not None, command_name
    return command, command.fan_out


def start(
    task: Task, command: Command, request: dict[str, Any], params: dict[str, Any], refresh: bool
) -> dict[str, Any]:
    """Replace the lookup with a chord over the configured sources; the chain's deliver (if
    any) follows the merge: replace() carries it. Returns (the answer landed) only when no
    source is configured."""
    assert command.fan_out is not None
    enabled = command.fan_out.enabled(get_settings())
    if not enabled:
        return finish_failure(command, request, params, command.fan_out.none_enabled)
    asked = float(request.get("received_at") or 0)
    lease = "" if refresh else str(request["request_id"])
    header = [source_lookup.s(command.name, name, params, asked=asked, lease=lease) for name in enabled]
    body = merge_sources.s(command.name, request, params, refresh)
    return task.replace(chord(header, body))


@app.task(bind=True, name="source_lookup", max_retries=None, ignore_result=False)
def source_lookup(
    self: Task,
    command_name: str,
    source: str,
    params: dict[str, Any],
    failures: int = 0,
    asked: float = 0.0,
    lease: str = "",
) -> dict[str, Any]:
    """One source. Never fails the chord: after its retries it reports what went wrong.
    `lease`: the request id whose lease this source keeps alive while it runs."""
    if lease:
        leases.hold(lease)
    try:
        return _ask_source(self, command_name, source, params, failures, asked, lease)
    except Retry as retry:
        if lease:  # nobody runs it until the countdown is over: keep the lease past it
            leases.wait_for_retry(lease, retry)
        raise
    finally:
        if lease:
            leases.release(lease)


def _ask_source(
    self: Task,
    command_name: str,
    source: str,
    params: dict[str, Any],
    failures: int,
    asked: float,
    lease: str,
) -> dict[str, Any]:
    _, spread = _spread(command_name)
    try:
        return {"source": source, "places": spread.fetch(source, params, upstream())}
    except Exception as exc:
        failure = classify(exc, source)
    if failure.kind == "not_found":
        return {"source": source, "places": []}
    if failure.kind == "wait" and within_quota_wait(asked, failure.after):
        raise self.retry(
            countdown=failure.after, kwargs={"failures": failures, "asked": asked, "lease": lease}
        ) from None
    if failure.kind == "wait":
        return {"source": source, "error": t("busy")}
    if failure.kind == "retry":
        failures += 1
        if failures <= get_settings().LOOKUP_MAX_RETRIES:
            retry = {"failures": failures, "asked": asked, "lease": lease}
            raise self.retry(countdown=backoff(failures - 1, failure.after), kwargs=retry) from None
        return {
            "source": source,
            "error": t("timed out") if failure.reason == "timeout" else t("not answering"),
        }
    if failure.kind == "refused":
        return {"source": source, "error": t("refused ({reason})", reason=failure.reason.replace("_", " "))}
    if failure.kind == "crash":  # a bug in the source's code: the others still answer
        sentry.capture(failure.error, command=command_name, provider=source)
    return {"source": source, "error": SOURCE_ERRORS[failure.kind]}


@app.task(bind=True, name="merge_sources")
def merge_sources(
    self: Task,
    results: list[dict[str, Any]],
    command_name: str,
    request: dict[str, Any],
    params: dict[str, Any],
    refresh: bool = False,
) -> dict[str, Any] | None:
    command, spread = _spread(command_name)
    if not refresh:
        leases.hold(str(request["request_id"]))
    text, answered = spread.merge(results, params)
    if answered:
        count(command.name, "ok")
        landed = finish(
            command, request, params, Reply(text, "answer"), command.ttl(), get_settings().CACHE_GRACE
        )
    else:
        count(command.name, "error")
        landed = finish_failure(command, request, params, text)
    return None if refresh else answer_and_release(self, landed)
