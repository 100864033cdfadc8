"""Beat's periodic jobs: a heartbeat for /health and /readyz, and dead-letter alerts."""

from __future__ import annotations

import time

from celery import signals

from bot.core import keys
from bot.ops import sentry
from config import get_settings
from tasks.app import app
from tasks.runtime import worker_redis

HEARTBEAT_EVERY = 30.0
DEAD_LETTER_CHECK_EVERY = 60.0


@app.task(name="beat_heartbeat", ignore_result=True)
def beat_heartbeat() -> None:
    worker_redis().set(keys.BEAT_SEEN, f"{time.time():.3f}", ex=3600)


@app.task(name="dead_letter_alert", ignore_result=True)
def dead_letter_alert() -> None:
    """Tell Sentry when the dead-letter list grew since the last check."""
    client = worker_redis()
    now = int(client.llen(keys.DEAD_LETTERS))
    before = int(client.getset(keys.DEAD_LETTERS_SEEN, now) or 0)
    if now > before:
        sentry.report(
            f"{now - before} new dead letter(s), {now} pending",
            ["dead-letters-growing"],
            level="warning",
            pending=now,
        )


app.conf.beat_schedule = {
    "heartbeat": {"task": "beat_heartbeat", "schedule": HEARTBEAT_EVERY},
    "dead-letter-alert": {"task": "dead_letter_alert", "schedule": DEAD_LETTER_CHECK_EVERY},
    "subscriptions": {"task": "subscriptions_tick", "schedule": get_settings().SUBSCRIPTION_TICK},
}


@signals.beat_init.connect
def _first_heartbeat(**_: object) -> None:
    """Beat runs an interval job first one interval after it starts: without this, /health
    said "beat not seen" for the first 30 s of every start (and a test waited for it)."""
    beat_heartbeat.apply_async()
