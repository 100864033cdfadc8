"""Discord end to end: the real discord.py client in a bot process, on the REST + gateway
emulator; real workers edit the answers in."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot.commands import registry
from bot.core import cache, keys
from tests.botprocess import BotProcess
from tests.chat_discord import TOKEN, discord_bot
from tests.conftest import wait_until
from tests.emulators.discord import INTERACTION_DEADLINE
from tests.emulators.upstreams import Fault

FX_1_EUR_USD = "1.00 EUR = 1.09 USD (ECB rate of Nov 27, 2026)"


@pytest.fixture(scope="module")
def bot(worker: Any) -> Iterator[BotProcess]:
    from tests.conftest import _DISCORD

    guilds = ",".join(str(g) for g in _DISCORD.guilds)
    _DISCORD.commands.clear()  # what bots of other modules synced (globally, say) is not ours
    process = discord_bot(_DISCORD, {"DISCORD_GUILD_IDS": guilds, "DISCORD_PREFIX": "!"}).start()
    yield process
    assert process.stop() == 0, process.logs()[-3000:]
    logs = process.logs()
    assert "Traceback" not in logs, logs[-3000:]
    assert TOKEN not in logs and TOKEN not in worker.logs(), "the Discord token leaked into a log"


@pytest.fixture
def chat(bot: BotProcess, make_discord_chat: Any) -> Any:
    return make_discord_chat()


def test_commands_are_synced_to_the_dev_guilds_with_typed_options(
    bot: BotProcess, discord_emulator: Any
) -> None:
    for guild in discord_emulator.guilds:
        synced = {c["name"]: c for c in discord_emulator.commands[f"guild:{guild}"]}
        assert set(synced) == {c.name for c in registry.commands(admin=None)}
        for command in registry.commands(admin=True):
            assert synced[command.name]["default_member_permissions"] == "0", "admin commands are hidden"
        for command in registry.commands():
            assert "default_member_permissions" not in synced[command.name]
    fx = synced["fx"]
    assert [(o["name"], o["type"], o["required"]) for o in fx["options"]] == [
        ("amount", 10, True),
        ("from", 3, True),
        ("to", 3, True),
    ]
    assert all(o["description"] for o in fx["options"])
    assert "global" not in discord_emulator.commands


def test_a_miss_is_deferred_in_time_and_edited_in_by_the_worker(chat: Any, discord_emulator: Any) -> None:
    interaction = chat.send("/fx 1 EUR USD")
    assert chat.reply() == FX_1_EUR_USD
    event = chat.last_event()
    assert event.kind == "edit" and event.interaction_id == interaction.id
    deferred = [e for e in discord_emulator.of_kind("deferred") if e.interaction_id == interaction.id]
    assert len(deferred) == 1
    assert deferred[0].t - interaction.dispatched_at < INTERACTION_DEADLINE
    chat.assert_no_reply()


def test_a_hit_is_answered_in_the_initial_response(
    make_discord_chat: Any, bot: BotProcess, discord_emulator: Any
) -> None:
    first, second = make_discord_chat(), make_discord_chat(guild=1)
    first.send("/fx 3 GBP USD")
    answer = first.reply()
    interaction = second.send("/fx 3 gbp usd")
    assert second.reply() == answer
    event = second.last_event()
    assert event.kind == "callback" and event.body["type"] == 4
    assert not [e for e in discord_emulator.of_kind("deferred") if e.interaction_id == interaction.id]


def test_a_flooding_user_gets_an_ephemeral_try_again(chat: Any) -> None:
    for _ in range(6):
        chat.send("/ping")
    replies = [chat.reply() for _ in range(6)]
    assert replies.count("pong") == 5
    limited = [e for e in chat.events() if "try again in" in e.content]
    assert len(limited) == 1 and limited[0].ephemeral


def test_every_limited_interaction_is_answered_to_the_flooder_alone(chat: Any) -> None:
    """An interaction must be answered, and its responses cost no rate limit: each limited
    one gets the ephemeral notice (told-once silence is for platforms where silence is free)."""
    for _ in range(8):
        chat.send("/ping")
    replies = [chat.reply() for _ in range(8)]
    assert replies.count("pong") == 5
    limited = [e for e in chat.events() if "try again in" in e.content]
    assert len(limited) == 3 and all(e.ephemeral for e in limited)


def test_admin_answers_are_seen_by_the_admin_alone(bot: BotProcess, make_discord_chat: Any) -> None:
    admin = make_discord_chat(user_id=4242)  # ADMINS lists discord:4242 in the test settings
    admin.send("/audit")
    admin.reply()
    assert admin.last_event().ephemeral


def test_a_redelivered_interaction_is_answered_once(chat: Any, discord_emulator: Any) -> None:
    interaction = chat.send("/ping")
    assert chat.reply() == "pong"
    chat.send("/ping", again=interaction)
    chat.assert_no_reply(within=1.0)


def test_an_expired_token_falls_back_to_a_channel_message(chat: Any) -> None:
    chat.send("/fx 5 USD CHF", age=16 * 60)  # the interaction is 16 minutes old when answered
    reply = chat.reply()
    assert reply.startswith("5.00 USD = ")
    assert chat.last_event().kind == "channel_message"
    assert chat.last_event().body["allowed_mentions"] == {"parse": []}


def test_a_429_during_delivery_delays_but_delivers_once(chat: Any, discord_emulator: Any) -> None:
    discord_emulator.fail("edit", 429, retry_after=0.5)
    chat.send("/fx 6 USD JPY")
    assert chat.reply(timeout=20).startswith("6.00 USD = ")
    chat.assert_no_reply()
    assert len([e for e in chat.events() if e.kind == "edit"]) == 1
    assert len(discord_emulator.served_429) == 1


def test_upstream_text_with_everyone_never_pings(chat: Any) -> None:
    chat.send("/wiki Everyone")
    reply = chat.reply()
    assert "@everyone" in reply
    assert chat.last_event().body["allowed_mentions"] == {"parse": []}
    other = chat.send("/wiki Everyone")  # now a cache hit, answered by the bot process
    assert chat.reply() == reply
    assert chat.last_event().interaction_id == other.id
    assert chat.last_event().body["data"]["allowed_mentions"] == {"parse": []}


def test_per_route_buckets_are_respected(bot: BotProcess, discord_emulator: Any, worker: Any) -> None:
    """Six parts into one webhook route: the bucket (5 per 2 s) is waited out, never overrun."""
    from tasks.deliver import deliver

    guild = discord_emulator.guilds[0]
    channel = discord_emulator.new_channel()
    interaction = discord_emulator.register_interaction(guild, channel)
    paragraphs = [f"Part {n}: " + "word " * 380 for n in range(6)]
    request = {
        "platform": "discord", "chat": str(channel), "user": "1", "request_id": f"discord:{interaction.id}",
        "command": "wiki", "args": "x", "received_at": time.time(),
        "meta": {"kind": "interaction", "application_id": "900000000000000001", "token": interaction.token,
                 "created_at": time.time(), "deferred": True},
    }  # fmt: skip
    deliver.delay({"request": request, "reply": {"text": "\n\n".join(paragraphs), "kind": "answer"}})
    assert discord_emulator.wait_for(lambda: len(discord_emulator.texts(channel)) == 6, 20)
    events = discord_emulator.texts(channel)
    assert [e.kind for e in events] == ["edit"] + ["followup"] * 5
    assert all(len(e.content) <= 2000 for e in events)
    assert [e.content.split(":")[0] for e in events] == [f"Part {n}" for n in range(6)]
    assert discord_emulator.bucket_overruns == 0
    assert events[5].t - events[0].t >= 1.5  # the sixth waited for the bucket to reset


def test_prefix_commands_work_when_enabled(bot: BotProcess, discord_emulator: Any) -> None:
    guild = discord_emulator.guilds[0]
    channel = discord_emulator.channels[guild]
    message_id = discord_emulator.message(guild, 4242, "!ping")
    assert discord_emulator.wait_for(lambda: discord_emulator.texts(channel), 10)
    first = discord_emulator.texts(channel)[0]
    assert first.content == "pong"
    assert str(first.body["message_reference"]["message_id"]) == str(message_id)
    discord_emulator.message(guild, 4242, "!fx 8 EUR GBP")
    assert discord_emulator.wait_for(lambda: len(discord_emulator.texts(channel)) == 2, 15)
    answer = discord_emulator.texts(channel)[1]
    assert answer.content.startswith("8.00 EUR = ") and answer.kind == "channel_message"
    assert discord_emulator.of_kind("typing"), "a queued prefix command shows typing"


def test_two_processes_each_run_one_of_two_shards(
    worker: Any, discord_emulator: Any, make_discord_chat: Any, bot: BotProcess
) -> None:
    bot.stop()  # the module's unsharded bot would take every guild
    try:
        shards = [
            discord_bot(discord_emulator, {"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": str(i)})
            for i in (0, 1)
        ]
        for process in shards:
            process.start()
        assert sorted(discord_emulator.connected_shards()) == [0, 1]
        assert {(0, 2), (1, 2)} <= set(discord_emulator.identifies)
        for guild in (0, 1):
            chat = make_discord_chat(guild=guild)
            chat.send("/ping")
            assert chat.reply() == "pong"
        for process in shards:
            assert process.stop() == 0, process.logs()[-2000:]
    finally:
        bot.start()


def test_the_slash_options_are_joined_in_declared_order() -> None:
    from bot.platforms.discord.adapter import _option_text

    data = {
        "options": [
            {"name": "to", "value": "EUR"},
            {"name": "amount", "value": 2.0},
            {"name": "from", "value": "USD"},
        ]
    }
    assert _option_text("fx", data) == "2 USD EUR"
    assert (
        json.dumps(_option_text("wiki", {"options": [{"name": "topic", "value": "Ada Lovelace"}]}))
        == '"Ada Lovelace"'
    )


def test_a_german_discord_user_reads_german(
    make_discord_chat: Any, bot: BotProcess, discord_emulator: Any
) -> None:
    chat = make_discord_chat()
    chat.locale = "de"
    chat.send("/fx 3 EUR USD")  # deferred, then edited in by the worker
    assert chat.reply() == "3,00 EUR = 3,26 USD (EZB-Kurs vom 27.11.2026)"
    chat.send("/weather " + "x" * 101)  # answered in the initial response
    assert chat.reply() == "Dieser Ortsname ist zu lang.\nVerwendung: /weather PLACE"
    synced = {c["name"]: c for c in discord_emulator.commands[f"guild:{discord_emulator.guilds[0]}"]}
    assert (
        synced["fx"]["description_localizations"]["de"]
        == "einen Betrag zwischen Währungen umrechnen (EZB-Kurse)"
    )
    assert synced["fx"]["options"][0]["description_localizations"]["fr"] == "combien, par ex. 100"


def test_autocomplete_offers_currencies_and_places_in_time(chat: Any, upstreams: Any) -> None:
    """Answered from Redis within Discord's 3 s: nothing yet the first time (a worker fetches,
    once), the values from then on, for every user and option that share them."""
    from tasks.suggest import suggest

    choices, took = chat.autocomplete("fx", "from", "us")
    assert choices == [] and took < INTERACTION_DEADLINE

    def offered(command: str, option: str, typed: str) -> list[dict[str, Any]]:
        choices, took = chat.autocomplete(command, option, typed)
        assert took < INTERACTION_DEADLINE
        return choices

    currencies = wait_until(lambda: offered("fx", "from", "us"), timeout=10, interval=0.2)
    assert currencies == [{"name": "USD — United States Dollar", "value": "USD"}]
    assert offered("fx", "to", "franc") == [{"name": "CHF — Swiss Franc", "value": "CHF"}], "names match too"
    assert upstreams.count("currencies") == 1, "one list for every option and user"
    suggest("currencies", "")  # a second copy of the fetch task (a publish retried) asks nobody
    assert upstreams.count("currencies") == 1
    places = wait_until(lambda: offered("weather", "place", "Par"), timeout=10, interval=0.2)
    assert places == [{"name": "Paris, Île-de-France, France", "value": "Paris"}]
    assert offered("weather", "place", "p") == [], "one letter asks nobody"
    assert upstreams.count("geocoding") == 1


def test_options_with_suggestions_are_synced_for_autocomplete(bot: BotProcess, discord_emulator: Any) -> None:
    synced = {c["name"]: c for c in discord_emulator.commands[f"guild:{discord_emulator.guilds[0]}"]}
    assert [o.get("autocomplete", False) for o in synced["fx"]["options"]] == [False, True, True]
    assert synced["weather"]["options"][0]["autocomplete"] is True


def test_refresh_button_updates_the_message_in_place(
    chat: Any, discord_emulator: Any, upstreams: Any, redis_client: Any
) -> None:
    chat.send("/fx 8 GBP EUR")
    assert chat.reply() == "8.00 GBP = 9.36 EUR (ECB rate of Nov 27, 2026)"
    shown = chat.last_event()
    [[button]] = [row["components"] for row in shown.body["components"]]
    assert button["label"] == "Refresh" and button["custom_id"].startswith("r:fx:")

    press = chat.press(button["custom_id"], shown)  # at once: the cached answer, in place
    assert chat.reply() == "8.00 GBP = 9.36 EUR (ECB rate of Nov 27, 2026)"
    edit = chat.last_event()
    assert edit.kind == "edit" and edit.interaction_id == press.id
    [deferred] = [e for e in discord_emulator.of_kind("deferred_update") if e.interaction_id == press.id]
    assert deferred.t - press.dispatched_at < INTERACTION_DEADLINE
    assert upstreams.count("fx") == 1

    pressed = keys.pressed(button["custom_id"])
    assert pressed is not None
    key = pressed[0]  # (cache key, page)
    fresh_until, entry = cache.decode(redis_client.get(key))
    entry["at"] -= 3600  # an hour old: pressing looks it up again
    redis_client.set(key, f"{int(fresh_until * 1000)}:{json.dumps(entry)}", keepttl=True)
    upstreams.script(
        "fx",
        Fault(body=json.dumps({"amount": 8, "base": "GBP", "date": "2026-11-28", "rates": {"EUR": 9.5}})),
    )
    press = chat.press(button["custom_id"], shown)
    assert chat.reply() == "8.00 GBP = 9.50 EUR (ECB rate of Nov 28, 2026)"
    edit = chat.last_event()
    assert edit.kind == "edit" and edit.interaction_id == press.id, "the worker edits the pressed message"
    assert edit.body["components"] == shown.body["components"]
    chat.assert_no_reply()
    assert upstreams.count("fx") == 2


def test_a_subscription_to_a_channel_that_is_gone_pauses(
    chat: Any, discord_emulator: Any, redis_client: Any
) -> None:
    """A /daily whose channel was deleted (Discord's 404 Unknown Channel) pauses, and says so."""
    from tasks.subscriptions import subscriptions_tick

    chat.send("/daily fx 5 EUR USD at 09:00")
    sub_id = re.search(r"\(#(\d+)\)", chat.reply())[1]  # type: ignore[index]
    discord_emulator.delete_channel(chat.channel_id)
    redis_client.zadd(keys.SUBSCRIPTIONS_DUE, {sub_id: 0})
    assert subscriptions_tick() == 1
    assert wait_until(lambda: redis_client.hget(keys.subscription(sub_id), "state") == "paused:gone", 10)
    assert redis_client.zscore(keys.SUBSCRIPTIONS_DUE, sub_id) is None, "no more ticks for it"
    chat.send("/subscriptions")
    assert chat.reply().splitlines()[1] == f"#{sub_id} daily /fx 5 EUR USD at 09:00 (UTC) — paused: gone"


def test_a_connection_lost_on_the_way_to_discord_is_retried(chat: Any, discord_emulator: Any) -> None:
    """The interaction response's connection breaks before Discord answers (aiohttp:
    "server disconnected"): sent again at once, within Discord's 3 s, and answered once."""
    discord_emulator.drop_connection()
    chat.send("/ping")
    assert chat.reply() == "pong"
    chat.assert_no_reply()
