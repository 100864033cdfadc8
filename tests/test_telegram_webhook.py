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
    assert chat.reply() == "1.00 EUR = 1.09 USD (ECB rate of Nov 27, 2026)"
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
        b"[" * 50_000 + b"]" * 50_000,  # deeper than json's recursion limit: RecursionError
    ],
)
def test_malformed_body_gets_400_and_the_server_lives_on(webhook_bot: BotProcess, raw: bytes) -> None:
    assert _post(webhook_bot, None, raw=raw) == 400
    assert requests.get(f"{webhook_bot.url}/healthz", timeout=5).ok


def test_a_redelivered_update_is_answered_once(
    webhook_bot: BotProcess, make_tg_chat: Any, telegram: Any
) -> None:
    """The test plays Telegram here: the answer comes in the webhook's response (a private
    chat), and Telegram retrying after a lost answer gets no second one, in any form."""
    chat = make_tg_chat()
    update = telegram.message_update(chat.chat_id, chat.user_id, "/ping")
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
    first = requests.post(f"{webhook_bot.url}/telegram/webhook", json=update, headers=headers, timeout=10)
    call = {"method": "sendMessage", "chat_id": chat.chat_id, "text": "pong", "parse_mode": "HTML"}
    assert first.json() == call
    again = requests.post(f"{webhook_bot.url}/telegram/webhook", json=update, headers=headers, timeout=10)
    assert again.status_code == 200 and again.content == b"ok", again.content
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


def _via(telegram: Any, chat_id: int) -> list[str]:
    return [m.via for m in telegram.messages(chat_id)]


def test_a_private_answer_rides_in_the_webhook_response(
    webhook_bot: BotProcess, make_tg_chat: Any, telegram: Any
) -> None:
    """A private chat's answer within its budget is the webhook's own answer: one HTTP
    exchange instead of two, and Telegram executes it (the emulator as telegram-bot-api)."""
    chat, other = make_tg_chat(), make_tg_chat()  # two chats: each has a budget of 2 at once
    chat.send("/ping")
    assert chat.reply() == "pong"
    chat.send("/fx 1 EUR CHF")  # a miss: the worker sends the answer
    assert chat.reply().startswith("1.00 EUR")
    other.send("/fx 1 EUR CHF")  # now a cache hit
    assert other.reply().startswith("1.00 EUR")
    assert _via(telegram, chat.chat_id) == ["webhook response", "request"]
    assert _via(telegram, other.chat_id) == ["webhook response"]
    assert ("sendMessage", 200) in telegram.response_calls
    [[button]] = json.loads(telegram.messages(other.chat_id)[0].params["reply_markup"])["inline_keyboard"]
    assert button["text"] == "Refresh", "the answer in the response keeps its button"


def test_a_group_answer_is_still_posted(webhook_bot: BotProcess, make_tg_chat: Any, telegram: Any) -> None:
    """In a group the answer is POSTed: a group's budget is tighter than Telegram shows, and
    a method in the webhook response that Telegram refuses is lost without a word."""
    chat = make_tg_chat("group")
    chat.send("/ping")
    assert chat.reply() == "pong"
    assert _via(telegram, chat.chat_id) == ["request"]


def test_answers_in_the_response_can_be_switched_off(worker: Any, make_tg_chat: Any, telegram: Any) -> None:
    from tests.chat_telegram import telegram_bot

    previous = telegram.state.webhook_url  # the module's bot gets its webhook back after
    bot = telegram_bot(telegram, "webhook", {"TELEGRAM_WEBHOOK_REPLIES": "off"}).start()
    try:
        chat = make_tg_chat()
        chat.send("/ping")
        assert chat.reply() == "pong"
        assert _via(telegram, chat.chat_id) == ["request"]
    finally:
        assert bot.stop() == 0
        telegram.state.webhook_url = previous


def _both_readers(update: dict[str, Any]) -> tuple[Any, Any]:
    from telegram import Bot, Update

    from bot.platforms.telegram.adapter import incoming_from, read_plain
    from tests.emulators.telegram import BOT_ID

    ptb = Update.de_json(json.loads(json.dumps(update)), Bot(TOKEN))
    slow = incoming_from(ptb.update_id, ptb.effective_message, BOT_ID) if ptb.effective_message else None
    return read_plain(update), slow


SHAPES: list[dict[str, Any]] = [
    {},
    {"chat_type": "group"},
    {"chat_type": "supergroup", "reply_to_bot": True},
    {"chat_type": "group", "reply_to_user": 42},
    {"sender_chat": {"id": -100777, "type": "channel", "title": "News"}},
    {"automatic_forward": True},
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: ",".join(s) or "private")
@pytest.mark.parametrize("text", ["/fx 1 EUR USD", "/fx@LookupTestBot 1 eur usd", "hi @LookupTestBot", "ü"])
def test_the_fast_path_reads_what_ptb_reads_or_leaves_the_message_to_ptb(
    telegram: Any, shape: dict[str, Any], text: str
) -> None:
    """The webhook reads plain text messages without PTB; whatever it reads must equal
    what the PTB path reads from the same update, and anything less plain goes to PTB."""
    update = telegram.message_update(-1001 if shape.get("chat_type") else 77, 77, text, **shape)
    fast, slow = _both_readers(update)
    assert fast is None or fast == slow
    plain = not {"reply_to_bot", "reply_to_user", "sender_chat", "automatic_forward"} & set(shape)
    assert (fast is not None) == plain


@pytest.mark.parametrize(
    "mangle",
    [
        lambda u: u["message"]["chat"].update(id="77"),
        lambda u: u["message"]["from"].update(id=True),
        lambda u: u["message"].update(text=""),
        lambda u: u["message"].pop("from"),
        lambda u: u.update(edited_message=u["message"]),
        lambda u: u["message"]["from"].update(id=777000),
    ],
)
def test_the_fast_path_leaves_odd_shapes_to_ptb(telegram: Any, mangle: Any) -> None:
    from bot.platforms.telegram.adapter import read_plain

    update = telegram.message_update(77, 77, "/ping")
    mangle(update)
    assert read_plain(update) is None
