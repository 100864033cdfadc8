"""No request lost at the edges: a broker that is away when a lookup is published, quotas that
would make a lookup wait without end."""

from __future__ import annotations

from typing import Any

import redis
import requests

from dev.redis_server import RedisServer, free_port
from tests.chat_telegram import telegram_bot
from tests.conftest import Worker, wait_until
from tests.stacks import running_stack, stack_bot, stack_env

UNAVAILABLE = "The bot is temporarily unavailable. Please try again in a minute."


def test_a_failed_publish_tells_everyone_coalesced_and_frees_the_lookup(
    telegram: Any, make_tg_chat: Any, redis_server: Any, upstreams: Any
) -> None:
    """The broker is away when a miss is published: the asker and everyone who coalesced
    behind the lookup meanwhile are told, and once the broker is back the same lookup is
    asked again at once (it used to stay "in flight" for COALESCE_TTL, 5 minutes)."""
    broker = RedisServer(port=free_port())  # not started yet: the broker is away
    env = stack_env(f"{redis_server.url}/10", f"{broker.url}/0")
    bot = stack_bot(telegram, env).start()
    worker = Worker(env, name="edges")
    try:
        first, second = make_tg_chat(), make_tg_chat()
        first.send("/fx 610 EUR USD")
        second.send("/fx 610 eur usd")  # the same lookup: it waits behind the first
        assert first.reply() == UNAVAILABLE
        assert second.reply() == UNAVAILABLE
        assert upstreams.count("fx") == 0
        broker.start()
        worker.start()
        assert wait_until(lambda: requests.get(f"{bot.url}/readyz", timeout=5).status_code == 200, timeout=30)
        third = make_tg_chat()
        third.send("/fx 610 EUR USD")
        assert third.reply(timeout=30).startswith("610.00 EUR = ")
        for chat in (first, second, third):
            chat.assert_no_reply(within=0.2)
    finally:
        bot.stop()
        worker.stop()
        broker.stop()
        telegram.state.webhook_url = ""


def test_a_quota_wait_has_a_deadline_then_the_user_is_told(
    telegram: Any, make_tg_chat: Any, redis_server: Any, upstreams: Any
) -> None:
    """One geocoding call a minute: the second of two distinct /weather lookups would wait a
    minute in the queue; past QUOTA_WAIT_MAX it is answered "busy, try again in N s"."""
    quota = {"UPSTREAM_RATE_LIMITS": "open-meteo-geocoding=1/minute", "QUOTA_WAIT_MAX": "2"}
    with running_stack(f"{redis_server.url}/11", f"{redis_server.url}/12", telegram, **quota):
        first, second = make_tg_chat(), make_tg_chat()
        first.send("/weather Paris")
        assert first.reply(timeout=20).startswith("Paris")
        second.send("/weather Berlin")
        answer = second.reply(timeout=20)
        assert answer.startswith("Open-Meteo is busy right now. Please try again in "), answer
        second.assert_no_reply(within=0.5)


def test_a_redelivery_after_a_crash_mid_reply_is_answered_once(
    telegram: Any, make_tg_chat: Any, redis_server: Any, worker: Any
) -> None:
    """The bot passes the gate, then dies while its reply is on the way (the Bot API does not
    answer before the kill). Telegram redelivers the update to another process: it waits out
    the first one's lease (DEDUPE_LEASE), then answers — once. Before, the gate had marked the
    update seen for a day and the redelivery was dropped. (The reply is a request here, not
    the webhook's response, so that the Bot API can hold it.)"""
    lease = {"DEDUPE_LEASE": "2", "TELEGRAM_WEBHOOK_REPLIES": "off"}
    first = telegram_bot(telegram, mode="webhook", extra_env=lease).start()
    second = telegram_bot(telegram, mode="webhook", extra_env=lease)
    try:
        chat = make_tg_chat()
        telegram.hang("sendMessage", 20)
        update = chat.send("/ping")
        assert telegram.wait_for(lambda: telegram.calls("sendMessage") >= 1, 15), "the reply never left"
        first.kill()
        second.start()
        telegram.push(update)  # Telegram's redelivery: the same update id
        assert chat.reply(timeout=20) == "pong"
        chat.assert_no_reply(within=1.0)
    finally:
        first.stop()
        second.stop()
        telegram.state.webhook_url = ""


def test_a_fan_out_with_no_source_configured_gives_its_lease_back(
    telegram: Any, make_tg_chat: Any, redis_server: Any
) -> None:
    """/reviews with no review API key answers "not set up" at once; its lookup lease goes
    too (a lease left behind would be re-published by the sweeper again and again)."""
    no_keys = {"YELP_API_KEY": "", "FOURSQUARE_API_KEY": "", "GOOGLE_PLACES_API_KEY": ""}
    app = redis.Redis.from_url(f"{redis_server.url}/15")
    app.flushdb()
    with running_stack(f"{redis_server.url}/15", f"{redis_server.url}/12", telegram, **no_keys):
        chat = make_tg_chat()
        update = chat.send("/reviews pizza in Naples")
        assert chat.reply(timeout=20).startswith("Reviews are not set up")
        request_id = f"telegram:{update['update_id']}"
        assert wait_until(lambda: app.zscore("lookups:leases", request_id) is None, timeout=10)
        assert app.exists(f"landed:{request_id}")
