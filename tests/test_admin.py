"""Admin commands on the console, Telegram and Discord: effects, refusals, audit, bad input."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from bot.commands import registry
from bot.core import keys
from tests.botprocess import BotProcess
from tests.chat_discord import discord_bot
from tests.chat_telegram import running
from tests.conftest import Chat, wait_until
from tests.emulators.upstreams import Fault

ADMIN_TG = 4242


@pytest.fixture(scope="module")
def tg_bot(worker: Any) -> Iterator[BotProcess]:
    from tests.conftest import _TELEGRAM

    with running(_TELEGRAM, "polling") as bot:
        yield bot


@pytest.fixture
def admin(make_chat: Any) -> Chat:
    return make_chat(user="admin")  # ADMINS lists console:admin in the test settings


def audit_entries(redis_client: Any) -> list[dict[str, str]]:
    return [fields for _, fields in redis_client.xrevrange("audit")]


def test_a_non_admin_is_refused_nothing_happens_and_it_is_audited(chat: Chat, redis_client: Any) -> None:
    chat.send("/ban telegram:777 spam")
    assert chat.immediate_reply() == "Not allowed: that command is for admins."
    assert redis_client.hget("admin", "ban:telegram:777") is None
    entry = audit_entries(redis_client)[0]
    assert entry["who"] == f"console:{chat.user}" and entry["command"] == "ban"
    assert entry["result"] == "refused: not an admin"


def test_help_shows_admin_commands_to_admins_only(chat: Chat, admin: Chat) -> None:
    chat.send("/help")
    assert "/ban" not in chat.immediate_reply()
    admin.send("/help")
    assert "/ban USER [reason]" in admin.immediate_reply()


def test_a_ban_stops_the_user_in_another_bot_process(
    admin: Chat, tg_bot: BotProcess, make_tg_chat: Any, upstreams: Any
) -> None:
    user = make_tg_chat()
    admin.send(f"/ban telegram:{user.user_id} flooding")
    assert admin.immediate_reply() == f"Banned telegram:{user.user_id}: flooding"
    user.send("/fx 1 EUR USD")
    assert user.reply() == "You are blocked from using this bot."
    user.send("/fx 1 EUR USD")
    user.assert_no_reply(within=1.0)  # one notice, then silence
    assert upstreams.count("fx") == 0, "a banned user costs no upstream call"
    admin.send(f"/unban telegram:{user.user_id}")
    assert admin.immediate_reply() == f"Unbanned telegram:{user.user_id}."
    user.send("/ping")
    assert user.reply() == "pong"


def test_a_telegram_admin_bans_by_replying_in_a_group(
    tg_bot: BotProcess, make_tg_chat: Any, redis_client: Any, telegram: Any
) -> None:
    group = make_tg_chat(chat_type="group", user_id=ADMIN_TG)
    group.send("/ban@LookupTestBot spam links", reply_to_user=90210)
    # Admin answers never show in the group: they go to the admin's private chat.
    assert group.reply() == "Sent you the answer in a private message."
    assert telegram.wait_for(lambda: telegram.messages(ADMIN_TG), 15)
    assert telegram.messages(ADMIN_TG)[-1].text == "Banned telegram:90210: spam links"
    assert redis_client.hget("admin", "ban:telegram:90210") == "spam links"


def test_telegram_publishes_admin_commands_only_to_admin_chats(tg_bot: BotProcess, telegram: Any) -> None:
    default = {c["command"] for c in telegram.state.commands}
    assert "ban" not in default
    scoped = telegram.state.scoped_commands[json.dumps({"chat_id": ADMIN_TG, "type": "chat"}, sort_keys=True)]
    assert {c["command"] for c in scoped} == {c.name for c in registry.commands(admin=None)}


def test_a_limit_change_applies_at_once(admin: Chat, make_chat: Any) -> None:
    user = make_chat()
    admin.send(f"/limit console:{user.user} 1/minute burst 1")
    assert admin.immediate_reply() == f"Limit for console:{user.user} is now 1/minute (burst 1)."
    user.send("/ping")
    assert user.immediate_reply() == "pong"
    user.send("/ping")
    assert user.immediate_reply() == "You are sending too fast. Please try again in 60 s."
    admin.send("/limit")
    assert f"console:{user.user}: 1/minute (burst 1)" in admin.immediate_reply()
    admin.send(f"/limit console:{user.user} reset")
    assert "reset to the configured default" in admin.immediate_reply()
    user.send("/ping")
    assert user.immediate_reply() == "pong"


def test_flush_empties_the_cache(admin: Chat, make_chat: Any, upstreams: Any) -> None:
    user = make_chat()
    user.send("/fx 2 USD EUR")
    user.reply()
    admin.send("/flush fx")
    assert admin.immediate_reply() == "Dropped 1 cached result of /fx."
    user.send("/fx 2 USD EUR")
    user.reply()
    assert upstreams.count("fx") == 2


def test_maintenance_answers_users_and_not_admins(admin: Chat, make_chat: Any) -> None:
    user = make_chat()
    admin.send("/maintenance on Upgrading, back at 14:00 UTC.")
    assert admin.immediate_reply() == "Maintenance on. Users now get: Upgrading, back at 14:00 UTC."
    user.send("/ping")
    assert user.immediate_reply() == "Upgrading, back at 14:00 UTC."
    admin.send("/ping")
    assert admin.immediate_reply() == "pong"
    admin.send("/maintenance off")
    assert admin.immediate_reply() == "Maintenance off."
    user.send("/ping")
    assert user.immediate_reply() == "pong"


def test_replay_answers_the_original_user(
    admin: Chat, tg_bot: BotProcess, make_tg_chat: Any, upstreams: Any
) -> None:
    user = make_tg_chat()
    upstreams.script("fx", *[Fault(status=503)] * 4)
    user.send("/fx 3 EUR CHF")
    assert "not answering right now" in user.reply()
    admin.send("/deadletters")
    listing = admin.immediate_reply()
    assert listing.startswith("1 dead letter, newest first:")
    assert "/fx 3 EUR CHF" in listing and "http_503 after 4 attempts" in listing
    admin.send("/replay all")
    assert admin.immediate_reply() == "Replayed 1 request; the users get their answers."
    assert user.reply(timeout=20).startswith("3.00 EUR = ")
    admin.send("/deadletters")
    assert admin.immediate_reply() == "No dead letters."


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/limit b@d! 5/minute", "'b@d!' is not a console user name"),
        ("/limit console:x 5/fortnight", "expected a rate like 20/minute"),
        ("/limit console:x", "Give a rate such as 5/minute, or reset."),
        ("/ban", "Name a user"),
        ("/ban telegram:abc", "'telegram:abc' is not a telegram user id"),
        ("/ban mastodon:1", "Unknown platform 'mastodon'"),
        ("/unban a b", "/unban takes one user."),
        ("/flush nosuch", "'nosuch' is not a cached command (fx, reviews, weather, wiki)."),
        ("/flush ping", "'ping' is not a cached command"),
        ("/maintenance sideways", "Say on [MESSAGE] or off."),
        ("/replay", "Give a dead letter's id, or all."),
        ("/audit 1000", "Give how many entries to show, 1 to 100."),
        ("/deadletters x", "Give how many to show, 1 to 100."),
        ("/stats now", "/stats takes no arguments."),
    ],
)
def test_bad_admin_arguments_get_a_usage_message(
    admin: Chat, redis_client: Any, line: str, expected: str
) -> None:
    admin.send(line)
    reply = admin.immediate_reply()
    assert expected in reply and "Usage: /" in reply
    assert audit_entries(redis_client)[0]["result"].startswith("usage error")


def test_every_admin_action_is_in_the_audit(admin: Chat, redis_client: Any) -> None:
    admin.send("/maintenance on")
    admin.immediate_reply()
    admin.send("/maintenance off")
    admin.immediate_reply()
    admin.send("/audit 2")
    listing = admin.immediate_reply().splitlines()
    assert "console:admin /maintenance off → Maintenance off." in listing[0]
    assert "console:admin /maintenance on → Maintenance on." in listing[1]
    entry = audit_entries(redis_client)[0]
    assert set(entry) == {"who", "platform", "command", "args", "result", "at"}


def test_stats_and_health_report_what_they_see(admin: Chat, make_chat: Any, redis_client: Any) -> None:
    from tasks.subscriptions import subscriptions_tick

    user = make_chat()
    user.send("/fx 4 USD GBP")
    user.reply()
    user.send("/fx 4 USD GBP")
    user.immediate_reply()
    user.send("/daily fx 4 USD GBP at 08:00")  # a subscription, due at once here: notified
    sub_id = re.search(r"\(#(\d+)\)", user.immediate_reply())[1]  # type: ignore[index]
    redis_client.zadd(keys.SUBSCRIPTIONS_DUE, {sub_id: 0})
    assert subscriptions_tick() == 1
    assert user.reply() == "4.00 USD = 3.15 GBP (ECB rate of Nov 27, 2026)"
    # The worker counts a lookup for /stats after its reply is out (off the user's wait).
    wait_until(lambda: any(redis_client.hget(k, "lookup:fx:ok") for k in redis_client.keys("stats:*")))
    admin.send("/stats")
    report = admin.immediate_reply()
    assert "last 5 min:" in report and "last hour:" in report
    assert "hit ratio 50% (1 hits, 1 misses)" in report
    assert "/fx: 1 lookups, error ratio 0%" in report
    assert "queue depth 0" in report
    assert (
        "subscriptions: 1 active, 0 due now, 0 s behind schedule, "
        "0.0 notifications/s over the last 5 min (1 sent)"
    ) in report
    admin.send("/health")
    health = admin.immediate_reply()
    assert "Redis: ok" in health
    assert "Broker: ok" in health
    assert "Workers: 1 alive" in health
    assert "Beat: never seen" in health


def test_discord_admins_use_slash_commands_and_others_are_refused(
    worker: Any, make_discord_chat: Any, redis_client: Any
) -> None:
    from tests.conftest import _DISCORD

    guilds = ",".join(str(g) for g in _DISCORD.guilds)
    process = discord_bot(_DISCORD, {"DISCORD_GUILD_IDS": guilds}).start()
    try:
        admin = make_discord_chat(user_id=4242)
        admin.send("/ban 5555 spam")
        assert admin.reply() == "Banned discord:5555: spam"
        other = make_discord_chat()
        other.send("/unban 5555")
        assert other.reply() == "Not allowed: that command is for admins."
        assert redis_client.hget("admin", "ban:discord:5555") == "spam"
    finally:
        assert process.stop() == 0
    wait_until(lambda: not _DISCORD.connected_shards())
