"""Logging for every process: JSON lines (or readable console lines), each carrying the
request id of the message being handled, with secrets scrubbed before anything is written."""

from __future__ import annotations

import contextvars
import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

from config import Settings

# Set by the pipeline for each incoming message and by each task from its request, so
# every line written on the way from the adapter through lookup and deliver carries it.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# Bot tokens travel in Telegram URLs (/bot<id>:<secret>/) and Discord headers; Discord's
# interaction tokens in its webhook and callback URLs (/webhooks/<app>/<token>).
_TOKEN_PATTERNS = [
    (re.compile(r"bot\d{3,}:[A-Za-z0-9_-]{20,}"), "[Filtered]"),
    (re.compile(r"\d{3,}:AA[A-Za-z0-9_-]{20,}"), "[Filtered]"),
    (re.compile(r"(Bot|Bearer)\s+[A-Za-z0-9._-]{20,}"), "[Filtered]"),
    (re.compile(r"(/(?:webhooks|interactions)/\d+/)[A-Za-z0-9._-]{20,}"), r"\1[Filtered]"),
]


def secrets_of(settings: Settings) -> list[str]:
    """Every configured secret value, longest first (so no secret is half-replaced)."""
    values = [
        settings.TELEGRAM_TOKEN.get_secret_value(),
        settings.TELEGRAM_WEBHOOK_SECRET.get_secret_value(),
        settings.DISCORD_TOKEN.get_secret_value(),
        settings.YELP_API_KEY.get_secret_value(),
        settings.FOURSQUARE_API_KEY.get_secret_value(),
        settings.GOOGLE_PLACES_API_KEY.get_secret_value(),
        settings.SENTRY_DSN.get_secret_value(),
    ]
    return sorted({v for v in values if len(v) >= 6}, key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "[Filtered]")
    for pattern, replacement in _TOKEN_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class ContextFilter(logging.Filter):
    """Adds the request id and scrubs secrets from the message and any exception text."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        if (
            record.name == "celery.app.trace"
            and isinstance(record.args, dict)
            and "return_value" in record.args
        ):
            # "Task lookup[…] succeeded: <its return value>" would log the user's request and
            # reply; the task's name, id and run time are what an operator needs.
            record.args = {**record.args, "return_value": "(not logged)"}
            data = getattr(record, "data", None)
            if isinstance(data, dict) and "return_value" in data:
                record.data = {**data, "return_value": "(not logged)"}
        message = record.getMessage()
        clean = scrub(message, self.secrets)
        if clean != message or record.args:
            # The template stays readable for Sentry's breadcrumbs, which see the record
            # after this handler and must not carry the arguments (bot/ops/sentry.py).
            record.template = getattr(record, "template", record.msg)
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info), self.secrets)
            record.exc_info = None
        return True


def setup(settings: Settings, component: str, level: str | None = None) -> None:
    """Configure the root logger of this process once (bot, worker, beat)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter(secrets_of(settings)))
    if settings.LOG_FORMAT == "json":
        formatter: logging.Formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"component": component},
        )
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level or settings.LOG_LEVEL)
    for noisy in ("httpx", "httpcore", "urllib3", "discord.gateway", "discord.http"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
