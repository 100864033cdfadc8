"""Telegram webhook mode: the bot's own HTTP server takes the updates Telegram POSTs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.botprocess import BotProcess
from tests.chat_telegram import TOKEN, WEBHOOK_SECRET, running
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def webhook_bot(worker: Any) -> Iterator[BotProcess]:
    from tests.conftest import _TELEGRAM

    with running(_TELEGRAM, "webhook") as bot:
        yield bot


def _post(
    bot: BotProcess, body: Any, secret: str | bytes | None = WEBHOOK_SECRET, raw: bytes | None = None
) -> int:
    headers: dict[str, str | bytes] = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    data = raw if raw is not None else json.dumps(body).encode()
    return requests.post(f"{bot.url}/telegram/webhook", data=data, headers=headers, timeout=10).status_code


def test_set_webhook_carries_url_and_secret(webhook_bot: BotProcess, telegram: Any) -> None:
    assert telegram.state.webhook_url == f"{webhook_bot.url}/telegram/webhook"
    assert telegram.state.webhook_secret == WEBHOOK_SECRET


def test_update_with_the_right_secret_is_answered(
    webhook_bot: BotProcess, make_tg_chat: Any, telegram: Any
) -> None:
    chat = make_tg_chat()
    chat.send("/fx 1 EUR USD")
    assert chat.reply() == "1.00 EUR = 1.09 USD (ECB rate of 2026-11-27)"
    assert telegram.webhook_statuses[-1] == 200


@pytest.mark.parametrize("secret", ["wrong-secret-0123456789", "", None])
def test_update_without_the_right_secret_is_refused_and_not_processed(
    webhook_bot: BotProcess, make_tg_chat: Any, telegram: Any, secret: str | None
) -> None:
    chat = make_tg_chat()
    update = telegram.message_update(chat.chat_id, chat.user_id, "/ping")
    assert _post(webhook_bot, update, secret=secret) == 403
    chat.assert_no_reply(within=0.5)


@pytest.mark.parametrize(
    "secret", [b"\xff\xfe\xfd", "café-secret".encode(), WEBHOOK_SECRET.encode() + b"\x80"]
)
def test_a_secret_of_any_bytes_but_the_right_ones_is_a_403_never_an_error(
    webhook_bot: BotProcess, make_tg_chat: Any, telegram: Any, secret: bytes
) -> None:
    chat = make_tg_chat()
    update = telegram.message_update(chat.chat_id, chat.user_id, "/ping")
    assert _post(webhook_bot, update, secret=secret) == 403
    assert "Traceback" not in webhook_bot.logs() and "Error handling request" not in webhook_bot.logs()
    chat.assert_no_reply(within=0.2)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2, 3]",
        b'{"message": {}}',
        b'{"update_id": "7"}',
        b"\xff\xfe",
        b'{"update_id": 1, "message": 5}',
    ],
)
def test_malformed_body_gets_400_and_the_server_lives_on(webhook_bot: BotProcess, raw: bytes) -> None:
    assert _post(webhook_bot, None, raw=raw) == 400
    assert requests.get(f"{webhook_bot.url}/healthz", timeout=5).ok


def test_a_redelivered_update_is_answered_once(
    webhook_bot: BotProcess, make_tg_chat: Any, telegram: Any
) -> None:
    chat = make_tg_chat()
    update = telegram.message_update(chat.chat_id, chat.user_id, "/ping")
    assert _post(webhook_bot, update) == 200
    assert _post(webhook_bot, update) == 200  # Telegram retrying after a lost answer
    assert chat.reply() == "pong"
    chat.assert_no_reply(within=1.0)


def test_webhook_mode_refuses_to_start_without_a_secret() -> None:
    env = {
        **os.environ,
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_MODE": "webhook",
        "TELEGRAM_WEBHOOK_URL": "https://x/y",
    }
    env.pop("TELEGRAM_WEBHOOK_SECRET", None)
    result = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "TELEGRAM_WEBHOOK_SECRET" in result.stderr
    assert TOKEN not in result.stderr + result.stdout
