"""Sentry for the bot and the workers: what is reported, how it is grouped, what is scrubbed.

Reported: unhandled exceptions (adapters, tasks), a lookup that exhausted its retries (one
Sentry issue per provider and error kind, by fingerprint — not one per user), a breaker
opening, a delivery that finally failed. Every event carries platform, command, provider and
request id tags. Bot tokens, API keys and — unless SENTRY_SEND_PII — message text and user
names never leave the process.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration

from bot.ops.logs import scrub, secrets_of
from config import Settings

log = logging.getLogger(__name__)
_secrets: list[str] = []
_send_pii = False
_enabled = False
# Event fields that hold what users typed or who they are, whatever their type: task
# arguments (Celery's "celery-job" context), parameters, texts, names.
_PII_KEYS = {
    "args", "kwargs", "params", "text", "username", "first_name", "last_name", "content", "user",
    "reply", "query_string", "cookies",
}  # fmt: skip


def init(settings: Settings, component: str) -> bool:
    """Start the SDK when SENTRY_DSN is set; safe to call more than once."""
    global _enabled
    dsn = settings.SENTRY_DSN.get_secret_value()
    if not dsn:
        return False
    configure_scrubbing(settings)
    sentry_sdk.init(
        dsn=dsn,
        environment=settings.SENTRY_ENVIRONMENT,
        release=settings.SENTRY_RELEASE or None,
        traces_sample_rate=settings.SENTRY_TRACES_SAMPLE_RATE,
        send_default_pii=settings.SENTRY_SEND_PII,
        server_name=component,
        before_send=before_send,
        before_send_transaction=before_send,
        before_breadcrumb=before_breadcrumb,
        # Log lines are breadcrumbs; events are what we report on purpose (below) and
        # unhandled exceptions, so one log.error per user does not become one issue each.
        integrations=[LoggingIntegration(level=logging.INFO, event_level=None)],
        # Frame locals hold requests, parameters and replies: only when PII is allowed.
        include_local_variables=settings.SENTRY_SEND_PII,
        shutdown_timeout=2,
    )
    sentry_sdk.set_tag("component", component)
    _enabled = True
    return True


def configure_scrubbing(settings: Settings) -> None:
    """What before_send removes: these settings' secrets, and user text unless allowed."""
    global _secrets, _send_pii
    _secrets, _send_pii = secrets_of(settings), settings.SENTRY_SEND_PII


def _clean(value: Any, key: str = "") -> Any:
    if not _send_pii and key in _PII_KEYS and value:
        return "[Filtered]"
    if isinstance(value, str):
        return scrub(value, _secrets)
    if isinstance(value, dict):
        return {k: _clean(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, key) for v in value]
    return value


def before_send(event: Any, hint: Any) -> Any:
    """Scrub every string in the event: tokens and keys always, user text unless allowed."""
    cleaned = _clean(event)
    if not _send_pii:
        cleaned.pop("user", None)
        request = cleaned.get("request")
        if isinstance(request, dict):  # an HTTP request the bot served (a webhook update)
            request.pop("data", None)
            if isinstance(request.get("url"), str):
                request["url"] = _origin(request["url"])
    return cleaned


def before_breadcrumb(crumb: Any, hint: Any) -> Any:
    if _send_pii:
        return _clean(crumb)
    data = crumb.get("data") if isinstance(crumb.get("data"), dict) else {}
    if crumb.get("category") == "httplib":
        # Upstream URLs carry what users asked for (/page/summary/<topic>, ?name=<place>),
        # and Discord's carry tokens: keep the method, host and status only.
        kept = {k: data[k] for k in ("method", "status_code", "reason") if k in data}
        if isinstance(data.get("url"), str):
            kept["url"] = _origin(data["url"])
        crumb["data"] = kept
        return _clean(crumb)
    if crumb.get("category") == "redis":
        return _clean(crumb)
    # A log line: its template, never its arguments ("%s: lookup /%s answered…"), which may
    # quote what users typed or what a task returned.
    record = hint.get("log_record") if isinstance(hint, dict) else None
    template = getattr(record, "template", getattr(record, "msg", ""))
    template = template if isinstance(template, str) else ""
    crumb["message"] = scrub(template, _secrets)[:200]
    crumb.pop("data", None)
    return _clean(crumb)


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL: no path, query or fragment."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}" if parts.netloc else "[Filtered]"


def report(
    message: str,
    fingerprint: list[str],
    *,
    level: str = "error",
    platform: str = "",
    command: str = "",
    provider: str = "",
    request_id: str = "",
    **extra: Any,
) -> None:
    """One grouped Sentry issue per fingerprint, tagged for search."""
    if not _enabled:
        return
    with sentry_sdk.new_scope() as scope:
        scope.fingerprint = fingerprint
        for name, value in (("platform", platform), ("command", command), ("provider", provider),
                            ("request_id", request_id)):  # fmt: skip
            if value:
                scope.set_tag(name, value)
        for name, value in extra.items():
            scope.set_extra(name, value)
        sentry_sdk.capture_message(message, level=level)  # type: ignore[arg-type]


def capture(
    exc: BaseException, *, platform: str = "", command: str = "", provider: str = "", request_id: str = ""
) -> None:
    if not _enabled:
        return
    with sentry_sdk.new_scope() as scope:
        for name, value in (("platform", platform), ("command", command), ("provider", provider),
                            ("request_id", request_id)):  # fmt: skip
            if value:
                scope.set_tag(name, value)
        sentry_sdk.capture_exception(exc)


def flush() -> None:
    if _enabled:
        sentry_sdk.flush(timeout=2)
