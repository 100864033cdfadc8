"""Operations: Sentry events and scrubbing, metrics, health and readiness, JSON logs with one
request id end to end. (The deploy files are checked in test_deploy.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from bot.ops.sentry import before_send, configure_scrubbing
from dev.redis_server import free_port
from tests.botprocess import BotProcess
from tests.chat_discord import TOKEN as DISCORD_TOKEN
from tests.chat_discord import discord_bot
from tests.chat_telegram import TOKEN as TELEGRAM_TOKEN
from tests.chat_telegram import WEBHOOK_SECRET, running
from tests.conftest import ROOT, TEST_ENV, wait_until
from tests.emulators.upstreams import Fault

SECRETS = [TELEGRAM_TOKEN, TELEGRAM_TOKEN.split(":")[1], DISCORD_TOKEN, TEST_ENV["YELP_API_KEY"],
           TEST_ENV["FOURSQUARE_API_KEY"], TEST_ENV["GOOGLE_PLACES_API_KEY"]]  # fmt: skip


@pytest.fixture(scope="module")
def webhook_bot(worker: Any) -> Iterator[BotProcess]:
    from tests.conftest import _TELEGRAM

    with running(_TELEGRAM, "webhook", no_tracebacks=False) as bot:
        yield bot


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


# --- Sentry -----------------------------------------------------------------------------------
def test_exhausted_lookup_reaches_sentry_grouped_and_tagged_without_secrets(
    webhook_bot: BotProcess, make_tg_chat: Any, upstreams: Any, sentry: Any
) -> None:
    upstreams.script("fx", *[Fault(status=503)] * 4)
    chat = make_tg_chat()
    update = chat.send("/fx 77 USD EUR")
    assert "not answering" in chat.reply(timeout=20)
    request_id = f"telegram:{update['update_id']}"
    events = wait_until(lambda: sentry.find(request_id=request_id), timeout=15)
    event = events[0]
    assert event["fingerprint"] == ["lookup-exhausted", "frankfurter", "http_503"]
    tags = dict(event["tags"])
    assert tags["platform"] == "telegram" and tags["command"] == "fx" and tags["provider"] == "frankfurter"
    raw = sentry.raw_text()
    for secret in SECRETS:
        assert secret not in raw, "a token or key reached Sentry"
    assert "77 USD EUR" not in raw, "message text reached Sentry without SENTRY_SEND_PII"


def test_a_breaker_opening_is_reported(make_chat: Any, upstreams: Any, sentry: Any) -> None:
    upstreams.script("wiki", *[Fault(status=500)] * 8)
    for topic in ("Alan Turing", "Ada Lovelace"):
        chat = make_chat()
        chat.send(f"/wiki {topic}")
        chat.reply(timeout=20)
    assert wait_until(
        lambda: [e for e in sentry.events if e.get("fingerprint") == ["breaker-open", "wikipedia"]],
        timeout=15,
    )


def test_before_send_scrubs_tokens_keys_and_user_text() -> None:
    from config import Settings

    configure_scrubbing(Settings(TELEGRAM_TOKEN=TELEGRAM_TOKEN, DISCORD_TOKEN=DISCORD_TOKEN))
    event = {
        "message": f"POST https://api.telegram.org/bot{TELEGRAM_TOKEN}/sendMessage failed",
        "request": {"headers": {"Authorization": f"Bot {DISCORD_TOKEN}"}},
        "extra": {"args": "my secret question", "nested": [f"token {TELEGRAM_TOKEN}"]},
        "user": {"username": "ann"},
        "breadcrumbs": {"values": [{"message": "bot7000001:AAH-something-long-enough-to-be-a-token"}]},
    }
    cleaned = json.dumps(before_send(event, {}))
    assert TELEGRAM_TOKEN not in cleaned and DISCORD_TOKEN not in cleaned
    assert "my secret question" not in cleaned and "ann" not in cleaned
    assert "AAH-something" not in cleaned


def test_discord_interaction_tokens_are_scrubbed_from_every_url() -> None:
    from config import Settings

    configure_scrubbing(Settings())
    token = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDpzZWNyZXQtdG9rZW4tb2YtYW4taW50ZXJhY3Rpb24"
    event = {
        "message": f"PATCH https://discord.com/api/v10/webhooks/1000/{token}/messages/@original: 500",
        "extra": {"url": f"https://discord.com/api/v10/interactions/99/{token}/callback"},
    }
    cleaned = json.dumps(before_send(event, {}))
    assert token not in cleaned
    assert "/webhooks/1000/[Filtered]/messages/@original" in cleaned


DISTINCTIVE = "Qwertyzebra"


def test_nothing_users_typed_reaches_sentry_in_any_form(
    webhook_bot: BotProcess, make_tg_chat: Any, upstreams: Any, sentry: Any, telegram: Any
) -> None:
    """Every command, with the upstreams failing until retries run out: the reports reach
    Sentry, and neither the text (raw, URL-encoded, underscored, lower-cased), nor a token
    or key does."""
    for provider in ("wiki", "geocoding", "forecast", "fx", "yelp", "foursquare", "google"):
        upstreams.script(provider, *[Fault(status=500)] * 60)
    texts = [
        f"/wiki {DISTINCTIVE} Private Topic",
        f"/weather {DISTINCTIVE} Heights",
        f"/reviews {DISTINCTIVE.lower()} pie in {DISTINCTIVE}ville",
        f"/fx 1 EUR USD {DISTINCTIVE}",
        f"/ban telegram:1 {DISTINCTIVE} reason",
        f"/{DISTINCTIVE}",
        f"{DISTINCTIVE} says hello",
    ]
    chats = [make_tg_chat() for _ in texts]
    for chat, text in zip(chats, texts, strict=True):
        chat.send(text)
    for chat in chats:
        chat.reply(timeout=30)
    wait_until(
        lambda: (
            {"wikipedia", "open-meteo"}
            <= {
                e["fingerprint"][1]
                for e in sentry.events
                if e.get("fingerprint", [""])[0] == "lookup-exhausted"
            }
        ),
        timeout=30,
    )
    raw = sentry.raw_text()
    assert DISTINCTIVE.lower() not in raw.lower(), "what a user typed reached Sentry"
    for secret in [*SECRETS, WEBHOOK_SECRET]:
        assert secret not in raw, "a token or key reached Sentry"


# --- metrics, health, readiness ----------------------------------------------------------------------
def _metric_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        match = re.match(r"(?:# (?:HELP|TYPE) )?([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
        if match:
            names.add(match[1])
    return names


def _used_metric_names() -> set[str]:
    dashboard = json.loads((ROOT / "grafana" / "dashboards" / "chatbot.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    return {m for e in exprs for m in re.findall(r"\b(chatbot_[a-z0-9_]+)", e)}


def test_queued_task_messages_carry_the_request_id_not_the_user_text(make_chat: Any) -> None:
    """Task message headers (what Flower and `celery events` show) hold no user input."""
    from celery.signals import before_task_publish

    published: list[dict[str, Any]] = []

    def capture(headers: dict[str, Any] | None = None, **_: Any) -> None:
        if headers and headers.get("task") == "lookup":
            published.append(headers)

    before_task_publish.connect(capture, weak=False)
    try:
        chat = make_chat()
        chat.send("/wiki Secret Topic Nobody Should See")
        chat.reply()
    finally:
        before_task_publish.disconnect(capture)
    assert len(published) == 1
    assert "Secret Topic" not in json.dumps(published[0], default=str)
    assert published[0]["argsrepr"].startswith("console:")


def test_every_metric_on_dashboard_and_alerts_is_exported(
    webhook_bot: BotProcess, make_tg_chat: Any, worker: Any, upstreams: Any
) -> None:
    upstreams.script("fx", Fault(status=503))
    chat = make_tg_chat()
    chat.send("/fx 31 USD EUR")  # a retry, an upstream error, a lookup, a delivery
    chat.reply(timeout=20)
    chat.send("/fx 31 USD EUR")  # a hit
    chat.reply()
    exported = _metric_names(requests.get(f"{webhook_bot.url}/metrics", timeout=10).text)
    port = worker.env["WORKER_METRICS_PORT"]
    exported |= _metric_names(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    for name in sorted(_used_metric_names()):
        assert name in exported, f"{name} is used by the dashboard or an alert but no process exports it"


def test_worker_metrics_add_up_across_pool_processes(worker: Any, make_chat: Any) -> None:
    port = worker.env["WORKER_METRICS_PORT"]

    def lookups() -> float:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        return sum(
            float(v)
            for v in re.findall(
                r'^chatbot_lookup_duration_seconds_count\{provider="wikipedia"\} (\S+)', text, re.M
            )
        )

    before = lookups()
    chats = [make_chat() for _ in range(4)]
    for n, chat in enumerate(chats):
        chat.send(f"/wiki Topic number {n}")
    for chat in chats:
        chat.reply()
    assert lookups() - before == 4, "every pool process' lookups are counted"


def test_a_metrics_scrape_costs_the_same_whatever_the_keyspace(
    webhook_bot: BotProcess, redis_client: Any
) -> None:
    pipe = redis_client.pipeline(transaction=False)
    for n in range(20_000):
        pipe.set(f"seen:telegram:{n}", 1, ex=600)
    pipe.execute()
    redis_client.config_resetstat()
    body = requests.get(f"{webhook_bot.url}/metrics", timeout=10).text
    commands = redis_client.info("commandstats")
    assert "cmdstat_scan" not in commands, "a scrape must not walk the keyspace"
    # Every upstream with a breaker is listed, from the registry, open or not.
    assert 'chatbot_breaker_open{provider="wikipedia",state="closed"} 0.0' in body


def test_health_and_readiness(webhook_bot: BotProcess) -> None:
    assert requests.get(f"{webhook_bot.url}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{webhook_bot.url}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"redis": "ok", "broker": "ok", "telegram": "ok"}}


def test_not_ready_without_redis_says_why(discord_emulator: Any) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    bot = discord_bot(discord_emulator, {"REDIS_URL": dead, "CELERY_BROKER_URL": dead, "REDIS_TIMEOUT": "1"})
    try:
        bot.start()
        answer = requests.get(f"{bot.url}/readyz", timeout=15)
        assert answer.status_code == 503
        checks = answer.json()["checks"]
        assert checks["redis"] != "ok" and checks["broker"] != "ok"
        assert wait_until(
            lambda: requests.get(f"{bot.url}/readyz", timeout=15).json()["checks"]["discord"] == "ok"
        )
    finally:
        bot.stop()
    wait_until(lambda: not discord_emulator.connected_shards())


# --- logs -----------------------------------------------------------------------------------------------
def test_one_request_id_from_adapter_through_lookup_and_deliver(
    webhook_bot: BotProcess, make_tg_chat: Any, worker: Any
) -> None:
    chat = make_tg_chat()
    update = chat.send("/fx 42 GBP EUR")
    chat.reply()
    request_id = f"telegram:{update['update_id']}"
    bot_lines = [line for line in json_lines(webhook_bot.logs()) if line.get("request_id") == request_id]
    assert any("telegram /fx → miss" in line["message"] for line in bot_lines)
    worker_lines = wait_until(
        lambda: [
            line
            for line in json_lines(worker.logs())
            if line.get("request_id") == request_id and "delivered" in line["message"]
        ],
        timeout=10,
    )
    assert worker_lines
    lookup_lines = [line for line in json_lines(worker.logs()) if line.get("request_id") == request_id]
    assert any("lookup /fx answered" in line["message"] for line in lookup_lines)
    assert all({"time", "level", "logger", "component"} <= set(line) for line in bot_lines + lookup_lines)
    everything = webhook_bot.logs() + worker.logs()
    for secret in SECRETS:
        assert secret not in everything


def test_console_log_format_for_humans(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LOG_FORMAT": "console",
        "LOG_LEVEL": "DEBUG",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=ROOT,
        env=env,
        input="/ping\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "temporarily unavailable" in result.stdout
    assert not result.stderr.lstrip().startswith("{"), "console format is not JSON"
