"""A bad setting stops start-up with the variable's name and what it expects."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from config import Settings, parse_rate
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RATE_LIMIT", "lots", "RATE_LIMIT: expected a rate like 20/minute"),
        ("RATE_LIMIT_BURST", "0", "RATE_LIMIT_BURST: Input should be greater than or equal to 1"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL: expected a redis://host:port/db URL"),
        ("CELERY_BROKER_URL", "kafka://x", "CELERY_BROKER_URL: expected a redis://… or amqp://… URL"),
        ("UPSTREAM_READ_TIMEOUT", "soon", "UPSTREAM_READ_TIMEOUT: Input should be a valid number"),
        ("LOOKUP_RETRY_BACKOFF_MAX", "5000", "must stay well under BROKER_VISIBILITY_TIMEOUT"),
        ("BROKER_VISIBILITY_TIMEOUT", "80", "BROKER_VISIBILITY_TIMEOUT must be above TASK_TIME_LIMIT"),
        (
            "BROKER_VISIBILITY_TIMEOUT",
            "5",
            "BROKER_VISIBILITY_TIMEOUT: Input should be greater than or equal to 10",
        ),
        ("ADMINS", "telegram:1087968824", "ADMINS: telegram:1087968824 is not one person but Telegram's"),
        ("ADMINS", "console:admin,telegram:136817688", "every message sent on behalf of a channel"),
        ("ADMINS", "telegram:777000", "automatic forwards from linked channels"),
        ("REDIS_SENTINELS", "sentinel-1", "REDIS_SENTINELS: expected host:port,host:port…"),
        ("TELEGRAM_PAID_BROADCAST_RATE", "many", "TELEGRAM_PAID_BROADCAST_RATE: expected a rate like"),
    ],
)
def test_bad_setting_stops_start_up_with_a_clear_message(name: str, value: str, message: str) -> None:
    env = {**os.environ, name: value}
    result = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_refuses_a_bad_setting_too() -> None:
    env = {**os.environ, "RATE_LIMIT": "20/fortnight"}
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode != 0
    assert "RATE_LIMIT: expected a rate like 20/minute" in result.stderr


def test_rates_parse_in_the_forms_the_readme_shows() -> None:
    assert parse_rate("20/minute").interval_ms == 3000
    assert parse_rate("5 / second").interval_ms == 200
    assert parse_rate("100/hour").period == 3600
    assert parse_rate("3/10seconds").interval_ms == 3333
    assert str(parse_rate("20/minute")) == "20/minute"


def test_broker_defaults_to_redis() -> None:
    settings = Settings(REDIS_URL="redis://h:1/2", CELERY_BROKER_URL="")
    assert settings.broker_url == "redis://h:1/2"
