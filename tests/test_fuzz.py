"""Fuzzing every input: command parsers, Telegram updates (webhook and polling), Discord
interactions. Whatever arrives: no crash, no stuck polling, a clear reply or a 4xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands import registry
from bot.commands.registry import UsageError
from tests.botprocess import BotProcess
from tests.chat_telegram import WEBHOOK_SECRET, running
from tests.scale import scale

# Odd unicode included: controls, surrogate-free astral planes, RTL marks, zero-width joiners.
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=600)
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@pytest.mark.parametrize("command", [c for c in registry.commands(admin=None)], ids=lambda c: c.name)
@settings(
    max_examples=scale(150, 1500),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(args=TEXT)
def test_every_parser_accepts_or_explains(command: registry.Command, args: str) -> None:
    try:
        params = command.run_parser(args)
    except UsageError as exc:
        assert str(exc), "a usage error says what is wrong"
        return
    assert isinstance(params, dict)
    if command.is_lookup:
        assert command.cache_key(params).startswith(f"cache:{command.name}:")
        json.dumps(params)  # travels through Celery as JSON


@pytest.fixture(scope="module")
def fuzz_webhook_bot(worker: Any) -> Iterator[BotProcess]:
    from tests.conftest import _TELEGRAM

    with running(_TELEGRAM, "webhook") as bot:
        yield bot


def _message(text: Any, extra: dict[str, Any], chat: Any = 1, user: Any = 1) -> dict[str, Any]:
    return {
        "message_id": 1,
        "date": 1_700_000_000,
        "chat": {"id": chat, "type": "private"},
        "from": {"id": user, "is_bot": False, "first_name": "F"},
        "text": text,
        **extra,
    }


UPDATES = st.one_of(
    JSON,  # anything at all
    st.builds(lambda i, m: {"update_id": i, "message": m}, st.integers(), JSON),  # wrong shapes
    st.builds(  # the right shape with odd values and extra fields
        lambda i, t, extra, chat, user: {"update_id": i, "message": _message(t, extra, chat, user)},
        st.integers(0, 2**31),
        st.one_of(TEXT, TEXT.map(lambda t: "/" + t), st.just("/fx " + "9" * 5000), JSON),
        st.dictionaries(
            st.sampled_from(["entities", "caption", "reply_to_message", "new_field"]), JSON, max_size=2
        ),
        st.one_of(st.integers(-(2**40), 2**40), TEXT),
        st.one_of(st.integers(1, 2**40), st.none()),
    ),
)


@settings(
    max_examples=scale(120, 1200),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(update=UPDATES)
def test_webhook_takes_any_body_without_a_5xx(fuzz_webhook_bot: BotProcess, update: Any) -> None:
    response = requests.post(
        f"{fuzz_webhook_bot.url}/telegram/webhook",
        data=json.dumps(update),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
        timeout=10,
    )
    assert response.status_code in (200, 400)


def test_the_webhook_bot_still_answers_after_fuzzing(fuzz_webhook_bot: BotProcess, make_tg_chat: Any) -> None:
    chat = make_tg_chat()
    chat.send("/ping")
    assert chat.reply() == "pong"


@settings(
    max_examples=scale(25, 250),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    text=TEXT,
    extra=st.dictionaries(
        st.sampled_from(["new_field", "caption", "has_media_spoiler"]), JSON_LEAF, max_size=2
    ),
)
def test_polling_never_gets_stuck_on_odd_updates(
    polling_fuzz_bot: BotProcess, make_tg_chat: Any, text: str, extra: dict[str, Any]
) -> None:
    from tests.conftest import _TELEGRAM

    chat = make_tg_chat()
    odd = _TELEGRAM.message_update(chat.chat_id, chat.user_id, text or "x")
    odd["message"].update(extra)
    _TELEGRAM.push(odd)
    chat.send("/ping")
    replies = _TELEGRAM.wait_for(lambda: "pong" in chat.replies(), 15)
    assert replies, f"polling stuck after {odd!r}"


@pytest.fixture(scope="module")
def polling_fuzz_bot(worker: Any) -> Iterator[BotProcess]:
    from tests.conftest import _TELEGRAM

    with running(_TELEGRAM, "polling") as bot:
        yield bot


@pytest.fixture(scope="module")
def fuzz_discord_bot(worker: Any) -> Iterator[BotProcess]:
    from tests.chat_discord import discord_bot
    from tests.conftest import _DISCORD

    guilds = ",".join(str(g) for g in _DISCORD.guilds)
    bot = discord_bot(_DISCORD, {"DISCORD_GUILD_IDS": guilds}).start()
    yield bot
    assert bot.stop() == 0
    assert "Traceback" not in bot.logs(), bot.logs()[-3000:]


OPTION_VALUES = st.one_of(
    TEXT, st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans()
)


@settings(
    max_examples=scale(40, 400),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.one_of(st.sampled_from([c.name for c in registry.commands(admin=None)]), TEXT.filter(bool)),
    options=st.lists(
        st.fixed_dictionaries(
            {
                "name": st.one_of(
                    TEXT, st.sampled_from(["amount", "from", "to", "topic", "place", "what", "user"])
                ),
                "type": st.sampled_from([3, 4, 6, 10]),
                "value": OPTION_VALUES,
            }
        ),
        max_size=4,
    ),
)
def test_discord_interactions_get_one_answer_whatever_their_options(
    fuzz_discord_bot: BotProcess, make_discord_chat: Any, name: str, options: list[dict[str, Any]]
) -> None:
    from tests.conftest import _DISCORD

    chat = make_discord_chat()
    interaction = _DISCORD.interaction(chat.guild_id, chat.user_id, name, options, channel_id=chat.channel_id)
    answered = _DISCORD.wait_for(
        lambda: [
            e
            for e in _DISCORD.events
            if e.interaction_id == interaction.id and e.kind in ("callback", "deferred")
        ],
        10,
    )
    assert len(answered) == 1, f"interaction {name!r} {options!r} answered {len(answered)} times"
