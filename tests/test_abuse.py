"""Abuse and bad input: a flood costs the bot almost nothing, no admin input can break the
gate, labels and task messages stay bounded, shared Telegram identities are told apart, and
admin answers stay private."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from bot.commands import registry
from bot.commands.lookups import fx
from bot.commands.registry import MAX_ARGS_LENGTH, UsageError
from bot.core.request import Request
from tests.botprocess import BotProcess
from tests.chat_telegram import running
from tests.conftest import Chat, wait_until

ADMIN_TG = 4242
ANONYMOUS_ADMINS = 1087968824  # Telegram's GroupAnonymousBot
TASK_MESSAGE_MAX = 8 * 1024


# --- a flood costs (almost) nothing -----------------------------------------------------------
def test_a_flooding_user_is_told_once_then_ignored_until_the_window_frees(
    chat: Chat, redis_client: Any
) -> None:
    for _ in range(40):
        chat.send("/ping")
    replies = []
    while not chat.replies.empty():
        replies.append(chat.replies.get_nowait())
    assert replies[:5] == ["pong"] * 5  # RATE_LIMIT_BURST=5
    assert replies[5:] == ["You are sending too fast. Please try again in 2 s."], "one notice, then silence"
    # Told until the next message would be allowed: at 30/minute, within 2 s.
    assert 0 < redis_client.pttl(f"rl:console:{chat.user}:told") <= 2000


def test_during_maintenance_a_flood_is_limited_before_the_notice(chat: Chat, redis_client: Any) -> None:
    redis_client.hset("admin", "maintenance", "Back at 14:00 UTC.")
    for _ in range(60):
        chat.send("/ping")
    replies = []
    while not chat.replies.empty():
        replies.append(chat.replies.get_nowait())
    assert replies == ["Back at 14:00 UTC."] * 5 + ["You are sending too fast. Please try again in 2 s."]


def _message_labels() -> set[str]:
    return {
        sample.labels["command"]
        for metric in REGISTRY.collect()
        if metric.name == "chatbot_messages"
        for sample in metric.samples
    }


def test_made_up_command_names_never_become_metric_labels(make_chat: Any) -> None:
    for n in range(60):
        make_chat().send(f"/junk{n}x{n}")
    labels = _message_labels()
    assert not [label for label in labels if label.startswith("junk")]
    assert labels <= {c.name for c in registry.commands(admin=None)} | {"unknown", "-"}


# --- admin input that cannot break anything -----------------------------------------------------
@pytest.fixture
def admin(make_chat: Any) -> Chat:
    return make_chat(user="admin")  # ADMINS lists console:admin in the test settings


@pytest.mark.parametrize("rate", ["1/200000000000day", "20000/second", "5/2day", "1/100000hour"])
def test_a_rate_the_gate_cannot_hold_is_refused_by_limit(admin: Chat, chat: Chat, rate: str) -> None:
    admin.send(f"/limit default {rate}")
    assert admin.immediate_reply().startswith("A rate allows at most 10,000 messages, over at most a day.")
    chat.send("/ping")
    assert chat.immediate_reply() == "pong"


@pytest.mark.parametrize("stored", ["1:99999999999999999999", "200000000000000:5", "0:5", "1000:0", "junk"])
def test_an_unusable_override_in_redis_is_ignored_not_fatal(
    admin: Chat, chat: Chat, redis_client: Any, stored: str
) -> None:
    redis_client.hset("admin", "limit:*", stored)
    chat.send("/ping")
    assert chat.immediate_reply() == "pong"
    admin.send("/limit default reset")
    assert admin.immediate_reply() == "Limit for the default reset to the configured default."


# --- bounded input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "amount", ["1e-999999", "1e-999999999", "1e999", "9" * 40, "0.0000000001", "1" + "0" * 30 + ".5"]
)
def test_an_amount_with_absurd_digits_is_refused(amount: str) -> None:
    with pytest.raises(UsageError):
        fx.parse(f"{amount} EUR USD")


def test_a_tiny_amount_is_refused_with_the_range(chat: Chat) -> None:
    chat.send("/fx 1e-999999 EUR USD")
    assert "is not an amount such as 100 or 2.50" in chat.immediate_reply()


LOOKUPS = [c for c in registry.commands() if c.is_lookup]


@pytest.mark.parametrize("command", LOOKUPS, ids=lambda c: c.name)
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    args=st.text(max_size=MAX_ARGS_LENGTH)
    | st.from_regex(r"\A[0-9eE.,+-]{1,60} [A-Z]{3} [A-Z]{3}\Z")
    | st.builds("{}e{} EUR USD".format, st.integers(1, 999), st.integers(-(10**9), 10**9))
)
def test_every_task_message_stays_small_whatever_was_typed(command: registry.Command, args: str) -> None:
    try:
        params = command.run_parser(args)
    except UsageError:
        return
    request = Request("telegram", "-1001234567890", "123456789", "telegram:123456789", command.name, args)
    # What the bot publishes: the lookup's arguments, JSON as Celery sends them.
    size = len(json.dumps([[request.to_dict(), params], {}]).encode())
    assert size <= TASK_MESSAGE_MAX, (command.name, size)


# --- Telegram: shared identities, private admin answers, explicit users --------------------------
@pytest.fixture(scope="module")
def tg_bot(worker: Any) -> Iterator[BotProcess]:
    from tests.conftest import _TELEGRAM

    with running(_TELEGRAM, "polling") as bot:
        yield bot


def test_a_flood_in_a_telegram_chat_costs_one_notice_and_no_429(
    tg_bot: BotProcess, make_tg_chat: Any, telegram: Any
) -> None:
    telegram.enforce_limits((3, 3))  # more lenient than TELEGRAM_CHAT_RATE=2/second, burst 2
    chat = make_tg_chat()
    for _ in range(40):
        chat.send("/ping")
    replies = sorted(chat.reply() for _ in range(6))
    assert replies == sorted(["pong"] * 5 + ["You are sending too fast. Please try again in 2 s."])
    chat.assert_no_reply(within=1.0)
    assert telegram.too_many == 0, "the bot's own replies went past Telegram's per-chat limit"


def test_answers_the_bot_sends_itself_keep_to_the_per_chat_budget(
    tg_bot: BotProcess, make_tg_chat: Any, telegram: Any
) -> None:
    chat = make_tg_chat()
    for _ in range(5):
        chat.send("/ping")
    assert [chat.reply() for _ in range(5)] == ["pong"] * 5
    sent = [m.t for m in telegram.messages(chat.chat_id)]
    # TELEGRAM_CHAT_RATE=2/second with a burst of 2: the last of five goes ~1.5 s after the first.
    assert sent[-1] - sent[0] >= 1.2, sent


def _group_update(telegram: Any, group: int, text: str, **kwargs: Any) -> dict[str, Any]:
    return telegram.message_update(
        group, kwargs.pop("user_id", ANONYMOUS_ADMINS), text, "supergroup", **kwargs
    )


def test_anonymous_admins_are_limited_and_banned_as_their_group(
    tg_bot: BotProcess, telegram: Any, admin: Chat
) -> None:
    first, second = -1_001_000_000_001, -1_001_000_000_002
    admin.send(f"/ban telegram:{first} spam")
    assert admin.immediate_reply() == f"Banned telegram:{first}: spam"
    for group in (first, second):
        sender = {"id": group, "type": "supergroup", "title": "A group"}
        telegram.push(_group_update(telegram, group, "/ping", sender_chat=sender))
    assert telegram.wait_for(lambda: telegram.messages(second), 15)
    assert [m.text for m in telegram.messages(second)] == ["pong"]
    assert telegram.wait_for(lambda: telegram.messages(first), 15)
    assert [m.text for m in telegram.messages(first)] == ["You are blocked from using this bot."]


def test_automatic_forwards_from_a_channel_are_ignored(tg_bot: BotProcess, telegram: Any) -> None:
    group = -1_001_000_000_003
    channel = {"id": -1_001_000_000_004, "type": "channel", "title": "News"}
    telegram.push(
        _group_update(telegram, group, "/ping", user_id=777000, sender_chat=channel, automatic_forward=True)
    )
    telegram.push(_group_update(telegram, group, "/ping", user_id=4343))
    assert telegram.wait_for(lambda: telegram.messages(group), 15)
    assert telegram.messages(group)[0].text == "pong"
    assert not telegram.wait_for(lambda: len(telegram.messages(group)) > 1, 0.5)


def test_an_admin_answer_in_a_group_goes_to_the_admins_private_chat(
    tg_bot: BotProcess, telegram: Any
) -> None:
    group = -1_001_000_000_005
    telegram.push(_group_update(telegram, group, "/maintenance", user_id=ADMIN_TG))
    assert telegram.wait_for(lambda: telegram.messages(group), 15)
    assert [m.text for m in telegram.messages(group)] == ["Sent you the answer in a private message."]
    assert telegram.wait_for(lambda: telegram.messages(ADMIN_TG), 15)
    assert [m.text for m in telegram.messages(ADMIN_TG)] == ["Maintenance is off."]


def test_an_admin_the_bot_cannot_write_to_is_told_how_in_the_group(tg_bot: BotProcess, telegram: Any) -> None:
    group = -1_001_000_000_006
    telegram.fail("sendMessage", 403)  # the admin never pressed Start in a private chat
    telegram.push(_group_update(telegram, group, "/deadletters", user_id=ADMIN_TG))
    assert telegram.wait_for(lambda: telegram.messages(group), 15)
    [hint] = [m.text for m in telegram.messages(group)]
    assert "cannot write to you privately" in hint and "press Start" in hint
    assert "dead letter" not in hint.lower()


def test_an_explicit_user_wins_over_the_message_replied_to(
    tg_bot: BotProcess, telegram: Any, redis_client: Any
) -> None:
    group = -1_001_000_000_007
    telegram.push(
        _group_update(telegram, group, "/ban telegram:42 spammer", user_id=ADMIN_TG, reply_to_user=99)
    )
    assert telegram.wait_for(lambda: telegram.messages(ADMIN_TG), 15)
    assert telegram.messages(ADMIN_TG)[-1].text == "Banned telegram:42: spammer"
    assert redis_client.hget("admin", "ban:telegram:42") == "spammer"
    assert redis_client.hget("admin", "ban:telegram:99") is None


def test_a_reply_names_the_user_when_no_user_is_given(
    tg_bot: BotProcess, telegram: Any, redis_client: Any
) -> None:
    group = -1_001_000_000_008
    telegram.push(
        _group_update(telegram, group, "/ban flooding the group", user_id=ADMIN_TG, reply_to_user=99)
    )
    wait_until(lambda: redis_client.hget("admin", "ban:telegram:99"))
    assert redis_client.hget("admin", "ban:telegram:99") == "flooding the group"
