"""Subscriptions in chat form (issue 17): /timezone, /watch, /daily, /subscriptions,
/unsubscribe — what is stored, what users are told, bad input — and beat's tick (called here
directly, as beat's task would run it) answering what is due."""

from __future__ import annotations

import datetime
import os
import re
import signal
import time
import zoneinfo
from collections.abc import Callable
from typing import Any

import pytest
import redis
from celery import Celery

from bot.commands import registry
from bot.core import keys
from config import Settings
from tasks.app import rabbitmq_queue
from tests.conftest import Chat, Worker, amqp_url_or_skip, wait_until
from tests.stacks import start_stack


def _id(reply: str) -> str:
    found = re.search(r"\(#(\d+)\)", reply)
    assert found, reply
    return found[1]


def test_watch_and_daily_are_stored_and_listed(make_chat: Callable[..., Chat], redis_client: Any) -> None:
    chat = make_chat()
    chat.send("/timezone europe/berlin")
    assert chat.immediate_reply() == "Your time zone is now Europe/Berlin. New /daily subscriptions use it."
    chat.send("/watch fx 100 usd eur above 95")
    watched = chat.immediate_reply()
    assert re.fullmatch(r"Watching fx 100 usd eur \(#\d+\): I will tell you when it goes above 95\.", watched)
    chat.send("/daily weather Paris at 7:30")
    daily = chat.immediate_reply()
    assert daily == (
        f"Every day at 07:30 (Europe/Berlin): /weather Paris (#{_id(daily)}). "
        "Change the time zone with /timezone."
    )
    chat.send("/subscriptions")
    assert chat.immediate_reply().splitlines() == [
        "You have 2 subscriptions:",
        f"#{_id(watched)} watch /fx 100 usd eur above 95",
        f"#{_id(daily)} daily /weather Paris at 07:30 (Europe/Berlin)",
    ]
    stored = redis_client.hgetall(keys.subscription(_id(watched)))
    assert stored["user"] == f"console:{chat.user}" and stored["kind"] == "watch"
    assert stored["state"] == "active" and stored["last"] == ""
    # The daily one is due at the next 07:30 in Berlin; the watch at beat's next tick.
    due = redis_client.zscore(keys.SUBSCRIPTIONS_DUE, _id(daily)) / 1000
    when = datetime.datetime.fromtimestamp(due, zoneinfo.ZoneInfo("Europe/Berlin"))
    assert (when.hour, when.minute) == (7, 30) and 0 < due - datetime.datetime.now().timestamp() <= 86_400


def test_unsubscribe_one_or_all(make_chat: Callable[..., Chat], redis_client: Any) -> None:
    chat = make_chat()
    chat.send("/watch weather Oslo below -5")
    first = _id(chat.immediate_reply())
    chat.send("/daily fx 1 EUR USD at 08:00")
    chat.immediate_reply()
    chat.send(f"/unsubscribe {first}")
    assert chat.immediate_reply() == "Removed 1 subscription."
    assert not redis_client.exists(keys.subscription(first))
    assert redis_client.zscore(keys.SUBSCRIPTIONS_DUE, first) is None
    chat.send("/unsubscribe all")
    assert chat.immediate_reply() == "Removed 1 subscription."
    chat.send("/subscriptions")
    assert chat.immediate_reply().startswith("You have no subscriptions.")
    assert redis_client.zcard(keys.SUBSCRIPTIONS_DUE) == 0


def test_bad_subscriptions_are_explained(make_chat: Callable[..., Chat]) -> None:
    cases = {
        "/watch fx 100 USD EUR sideways 95": "Say above or below, then a number.",
        "/watch wiki Ada Lovelace above 3": "Only these can be watched: fx, weather.",
        "/watch fx 100 USD above 95": "Give an amount and two currency codes.",
        "/daily weather Paris at 25:00": "'25:00' is not a time such as 07:30.",
        "/timezone Mars/Olympus_Mons": "'Mars/Olympus_Mons' is not a time zone such as Europe/Berlin or UTC.",
        "/unsubscribe 999": "You have no subscription #999. /subscriptions lists yours.",
        "/unsubscribe ²": "Name a subscription by its number (see /subscriptions), or all.",  # fuzzer's find
    }
    chat = make_chat()
    for n, (typed, expected) in enumerate(cases.items()):
        if n and n % 4 == 0:
            chat = make_chat()  # within each user's burst of messages
        chat.send(typed)
        assert chat.immediate_reply().splitlines()[0] == expected, typed


def test_a_user_keeps_at_most_the_cap(make_chat: Callable[..., Chat], redis_client: Any) -> None:
    chat = make_chat()
    redis_client.sadd(keys.subscriptions_of(f"console:{chat.user}"), *range(1000, 1010))  # ten already
    chat.send("/watch fx 1 EUR USD above 2")
    assert chat.immediate_reply() == (
        "You have 10 subscriptions, the most allowed. Remove one with /unsubscribe first."
    )
    assert redis_client.zcard(keys.SUBSCRIPTIONS_DUE) == 0


def _due_now(redis_client: Any, *ids: str) -> None:
    redis_client.zadd(keys.SUBSCRIPTIONS_DUE, dict.fromkeys(ids, 0))


def test_daily_answers_arrive_when_due_from_one_upstream_call(
    make_chat: Callable[..., Chat], redis_client: Any, upstreams: Any
) -> None:
    from tasks.subscriptions import subscriptions_tick

    first, second = make_chat(), make_chat()
    first.send("/daily fx 3 EUR GBP at 07:30")
    second.send("/daily fx 3 eur gbp at 18:00")
    ids = [_id(first.immediate_reply()), _id(second.immediate_reply())]
    due_before = redis_client.hget(keys.subscription(ids[0]), "due")
    _due_now(redis_client, *ids)
    assert subscriptions_tick() == 2
    assert first.reply() == second.reply() == "3.00 EUR = 2.56 GBP (ECB rate of Nov 27, 2026)"
    assert upstreams.count("fx") == 1, "one upstream call per distinct lookup"
    assert redis_client.zscore(keys.SUBSCRIPTIONS_DUE, ids[0]) > time.time() * 1000, "due again tomorrow"

    # A tick that died after sending runs again: the same notification id, nothing twice.
    redis_client.hset(keys.subscription(ids[0]), "due", due_before)
    _due_now(redis_client, ids[0])
    assert subscriptions_tick() == 1
    first.assert_no_reply(within=1.0)


def test_lookups_landing_while_the_tick_runs_answer_everyone_waiting(
    redis_client: Any, upstreams: Any, worker: Any
) -> None:
    """A batch of 100 lookups, two subscribers each, which the upstream answers at once: the
    first land while the tick is still publishing the others. Everyone is answered, once,
    from one upstream call per lookup. (The tick once queued the waiters after publishing
    the lookups: a lookup that landed first left its waiters unanswered for good.)"""
    import asyncio

    from bot.commands.subscriptions import daily, parse_daily
    from bot.core.request import Request
    from bot.main import make_redis
    from config import get_settings
    from tasks.subscriptions import subscriptions_tick

    chats = [f"tick-{n}-{time.time_ns()}" for n in range(200)]

    async def subscribe() -> None:  # as /daily does for each of them
        client = make_redis(get_settings())
        for n, chat in enumerate(chats):
            request = Request("console", chat, chat, f"r-{chat}", "daily", "", {})
            await daily(client, request, parse_daily(f"fx {1 + n % 100} EUR CHF at 06:00"))
        await client.aclose()

    asyncio.run(subscribe())
    _due_now(redis_client, *redis_client.zrange(keys.SUBSCRIPTIONS_DUE, 0, -1))
    assert subscriptions_tick() == 200

    def answered() -> int:
        return sum(1 for chat in chats if redis_client.llen(keys.console_replies(chat)))

    assert wait_until(lambda: answered() == 200, timeout=20)
    assert [redis_client.llen(keys.console_replies(chat)) for chat in chats] == [1] * 200
    assert upstreams.count("fx") == 100


def test_a_watch_alerts_once_per_crossing(
    make_chat: Callable[..., Chat], redis_client: Any, upstreams: Any
) -> None:
    from tasks.subscriptions import subscriptions_tick

    chat = make_chat()
    chat.send("/watch fx 100 USD EUR above 90")  # 100 USD are 92 EUR on the emulator
    sub_id = _id(chat.immediate_reply())
    assert subscriptions_tick() == 1  # due at once: no fresh answer yet, so it is looked up
    cache_key = registry.get("fx").cache_key(registry.get("fx").run_parser("100 USD EUR"))  # type: ignore[union-attr]
    assert wait_until(lambda: redis_client.exists(cache_key), timeout=10)
    chat.assert_no_reply(within=0.2)  # a refresh: nobody is answered
    _due_now(redis_client, sub_id)
    assert subscriptions_tick() == 1
    assert chat.reply().splitlines() == [
        "/fx 100 USD EUR is now above 90:",
        "100.00 USD = 92.00 EUR (ECB rate of Nov 27, 2026)",
    ]
    assert redis_client.hget(keys.subscription(sub_id), "last") == "above"
    _due_now(redis_client, sub_id)
    assert subscriptions_tick() == 1
    chat.assert_no_reply(within=1.0)  # still above: told once per crossing
    assert upstreams.count("fx") == 1


def test_lag_behind_schedule_is_measured_for_metrics(
    make_chat: Callable[..., Chat], redis_client: Any
) -> None:
    from bot.ops.gauges import GaugeReader
    from config import get_settings

    chat = make_chat()
    chat.send("/watch fx 1 EUR USD above 2")
    sub_id = _id(chat.immediate_reply())
    redis_client.zadd(keys.SUBSCRIPTIONS_DUE, {sub_id: int((time.time() - 90) * 1000)})  # 90 s overdue
    state = GaugeReader(get_settings(), [], lambda: "0")()
    assert (state["subscriptions"], state["subscriptions_due"]) == (1, 1)
    assert 89 <= state["subscriptions_lag"] < 120


@pytest.mark.parametrize(("broker", "within"), [("redis", 30.0), ("rabbitmq", 20.0)])
def test_a_worker_killed_mid_fan_out_leaves_nothing_unsent_and_sends_nothing_twice(
    telegram: Any, make_tg_chat: Any, redis_server: Any, upstreams: Any, broker: str, within: float
) -> None:
    """Subscribers are being notified, at the (paid-broadcast) outbound limit, when the worker
    dies whole (SIGKILL to its group) in the middle of a sendMessage. A replacement sends the
    rest: every subscriber gets exactly one notification. The batch comes back on RabbitMQ at
    once (the connection dropped); on Redis, whose broker would give it back only after
    BROKER_VISIBILITY_TIMEOUT (300 s), through the batch's lease (LOOKUP_LEASE, 3 s here). The
    senders' per-notification markers skip what was already sent."""
    broker_url = f"{redis_server.url}/7" if broker == "redis" else amqp_url_or_skip()
    app = redis.Redis.from_url(f"{redis_server.url}/5", decode_responses=True)
    app.flushdb()
    settings = {
        "TELEGRAM_PAID_BROADCAST_RATE": "5/second",  # the fan-out of 20 takes ~4 s: time to die in it
        "LOOKUP_LEASE": "3",  # a lost worker's batch is re-published 3 s on (10 by default)
    }
    worker, bot = start_stack(f"{redis_server.url}/5", broker_url, telegram, **settings)
    replacement = Worker(worker.env, name="replacement")
    try:
        chats = [make_tg_chat() for _ in range(20)]
        for chat in chats:
            chat.send("/daily fx 6 EUR USD at 07:00")
        for chat in chats:
            assert chat.reply().startswith("Every day at 07:00 (UTC): /fx 6 EUR USD")
        subscribed: list[str] = app.zrange(keys.SUBSCRIPTIONS_DUE, 0, -1)  # type: ignore[assignment]
        app.zadd(keys.SUBSCRIPTIONS_DUE, dict.fromkeys(subscribed, 0))  # all due now
        beat = Celery(set_as_current=False)  # what beat does every SUBSCRIPTION_TICK
        queue = worker.env["CELERY_QUEUE"]
        beat.conf.task_queues = (rabbitmq_queue(Settings(CELERY_BROKER_URL=broker_url, CELERY_QUEUE=queue)),)
        beat.conf.task_default_queue = queue
        with beat.connection_for_write(broker_url) as connection:  # not CELERY_BROKER_URL's
            beat.send_task("subscriptions_tick", connection=connection)

        def notified() -> int:
            return sum(len(telegram.messages(chat.chat_id)) - 1 for chat in chats)

        assert wait_until(lambda: notified() >= 5, timeout=20)
        telegram.hang("sendMessage", 30)  # the next notification is in flight when it dies
        assert wait_until(lambda: "sendMessage" not in telegram.hangs, timeout=10)
        assert worker.process is not None
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
        assert notified() < len(chats), "the fan-out was over before the worker died"
        replacement.start()
        for chat in chats:
            assert chat.reply(timeout=within) == "6.00 EUR = 6.52 USD (ECB rate of Nov 27, 2026)"
        for chat in chats:
            chat.assert_no_reply(within=0.1)
            assert telegram.messages(chat.chat_id)[-1].params["allow_paid_broadcast"] == "true"
        assert upstreams.count("fx") == 1, "one upstream call for everyone"
    finally:
        bot.stop()
        replacement.stop()
        worker.stop()
        telegram.state.webhook_url = ""
