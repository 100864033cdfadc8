"""Upstream resilience: breakers, coalescing, stale answers, quotas; /weather and /reviews."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from bot.commands import registry
from bot.commands.lookups import reviews
from bot.core import cache, i18n, keys
from bot.core.i18n import t
from bot.core.request import Request
from bot.main import make_redis
from bot.pipeline import Pipeline
from config import Settings, get_settings
from tasks.enqueue import CeleryQueue
from tests.conftest import Chat, LoopThread, Worker, wait_until
from tests.emulators.upstreams import Fault


@pytest.fixture
def second_worker(worker: Worker) -> Iterator[Worker]:
    """Another worker process on the same queue: state must be shared through Redis."""
    extra = Worker({**worker.env, "WORKER_METRICS_PORT": "0"}, name="w2").start()
    yield extra
    extra.stop()


def breaker_state(redis_client: Any, provider: str) -> dict[str, str]:
    return redis_client.hgetall(f"breaker:{{{provider}}}")


def test_breaker_opens_answers_at_once_half_opens_and_closes_across_workers(
    make_chat: Any, upstreams: Any, redis_client: Any, second_worker: Worker
) -> None:
    upstreams.script("fx", *[Fault(status=503)] * 20)
    first = make_chat()
    first.send("/fx 1 USD EUR")
    assert "not answering right now (tried 4 times)" in first.reply()
    second = make_chat()
    second.send("/fx 2 USD EUR")  # the 5th failure opens the breaker; its retry finds it open
    assert second.reply().startswith("Frankfurter is unavailable right now, try again in ")
    assert breaker_state(redis_client, "frankfurter")["state"] == "open"
    calls = upstreams.count("fx")
    assert calls == 5

    third = make_chat()
    third.send("/fx 3 USD EUR")
    assert third.immediate_reply().startswith("Frankfurter is unavailable right now, try again in ")
    assert upstreams.count("fx") == calls, "no upstream call while the breaker is open"

    open_until = int(breaker_state(redis_client, "frankfurter")["open_until"]) / 1000
    wait_until(lambda: time.time() > open_until + 0.05, timeout=5)
    upstreams.reset()  # the upstream is healthy again
    chats = [make_chat() for _ in range(4)]
    for n, chat in enumerate(chats):
        chat.send(f"/fx {10 + n} USD EUR")
    replies = [chat.reply() for chat in chats]
    assert any(r.endswith("(ECB rate of Nov 27, 2026)") for r in replies), replies
    assert breaker_state(redis_client, "frankfurter")["state"] == "closed"
    fine = make_chat()
    fine.send("/fx 20 USD EUR")
    assert fine.reply().startswith("20.00 USD = ")
    assert "Task lookup[" in second_worker.logs(), "the second worker took part"


def test_half_open_lets_exactly_one_probe_through_across_processes(redis_server: Any) -> None:
    """Two clients stand for two worker processes sharing one breaker."""
    from bot.upstream.breaker import BreakerOpen, Breakers

    settings = get_settings().model_copy(update={"BREAKER_FAILURES": 2, "BREAKER_COOLDOWN": 0.2})
    clients = [redis.Redis.from_url(os.environ["REDIS_URL"]) for _ in range(2)]
    one, two = (Breakers(c, settings) for c in clients)
    one.failure("probe-test")
    assert two.failure("probe-test") is True  # the second failure in the window opens it
    with pytest.raises(BreakerOpen):
        one.allow("probe-test")
    open_until = int(clients[0].hget("breaker:{probe-test}", "open_until") or 0)
    wait_until(lambda: time.time() * 1000 > open_until, 2)
    two.allow("probe-test")  # the probe
    with pytest.raises(BreakerOpen):
        one.allow("probe-test")  # while the probe is out, nobody else goes
    two.success("probe-test")
    one.allow("probe-test")  # closed again
    assert clients[0].hget("breaker:{probe-test}", "state") == b"closed"
    for client in clients:
        client.close()


def test_a_thousand_identical_misses_make_one_upstream_call(
    bot_loop: LoopThread, worker: Worker, upstreams: Any
) -> None:
    upstreams.latency["wiki"] = 0.8
    settings = get_settings()
    session = "coalesce-test"

    async def flood() -> list[str]:
        client = make_redis(settings)
        pipeline = Pipeline(settings, client, CeleryQueue(settings))
        requests_ = [
            Request("console", session, f"crowd-{n}", f"console:{session}-{n}", "wiki", "Alan Turing")
            for n in range(1000)
        ]
        outcomes = await asyncio.gather(*(pipeline.handle(r) for r in requests_))
        await client.aclose()
        return [o.decision for o in outcomes]

    decisions = bot_loop.run(flood(), timeout=60)
    assert decisions.count("miss") == 1
    assert decisions.count("coalesced") == 999
    listener = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=10)
    seen: dict[str, str] = {}
    deadline = time.monotonic() + 45
    while len(seen) < 1000 and time.monotonic() < deadline:
        item = listener.blpop([f"console:replies:{session}"], timeout=2)
        if item:
            payload = json.loads(item[1])
            assert payload["request_id"] not in seen, "a requester was answered twice"
            seen[payload["request_id"]] = payload["text"]
    listener.close()
    assert len(seen) == 1000
    assert all(text.startswith("Alan Turing\n") for text in seen.values())
    assert upstreams.count("wiki") == 1


def _seed_stale(redis_client: Any, text: str, age: float = 7200) -> str:
    command = registry.get("fx")
    assert command is not None
    key = command.cache_key({"amount": "5", "from": "EUR", "to": "USD"})
    redis_client.set(key, cache.encode(text, "answer", ttl=60, at=time.time() - age), ex=86400)
    return key


def test_stale_answer_during_an_outage_then_refreshed(
    make_chat: Any, upstreams: Any, redis_client: Any
) -> None:
    key = _seed_stale(redis_client, "5.00 EUR = 5.40 USD (old)")
    upstreams.script("fx", *[Fault(status=503)] * 4)
    chat = make_chat()
    chat.send("/fx 5 EUR USD")
    reply = chat.immediate_reply()
    assert reply.startswith("5.00 EUR = 5.40 USD (old)\n(as of 2 h ago; may be outdated — refreshing)")
    wait_until(lambda: redis_client.exists(f"inflight:{key}") == 0, timeout=20)  # the refresh gave up
    assert upstreams.count("fx") == 4
    assert "(old)" in redis_client.get(key), "a failed refresh keeps the stale answer"
    chat.send("/fx 5 EUR USD")  # the upstream is back: still stale at once, and this refresh lands
    assert "(old)" in chat.immediate_reply()
    wait_until(lambda: "(old)" not in redis_client.get(key), timeout=20)
    chat.send("/fx 5 EUR USD")
    assert chat.immediate_reply() == "5.00 EUR = 5.43 USD (ECB rate of Nov 27, 2026)"
    chat.assert_no_reply()


def test_stale_beats_an_error_while_the_breaker_is_open(make_chat: Any, redis_client: Any) -> None:
    _seed_stale(redis_client, "5.00 EUR = 5.40 USD (old)")
    redis_client.hset(
        "breaker:{frankfurter}", mapping={"state": "open", "open_until": int(time.time() * 1000) + 60_000}
    )
    chat = make_chat()
    chat.send("/fx 5 EUR USD")
    assert "Frankfurter is not answering right now" in chat.immediate_reply()


def test_quota_holds_across_two_workers(make_chat: Any, upstreams: Any, second_worker: Worker) -> None:
    places = ["Paris", "Naples", "London", "Oslo", "Rome", "Madrid"]
    chats = [make_chat() for _ in places]
    for chat, place in zip(chats, places, strict=True):
        chat.send(f"/weather {place}")
    for chat, place in zip(chats, places, strict=True):
        assert chat.reply(timeout=30).startswith(place)
    calls = sorted(upstreams.calls["geocoding"])
    assert len(calls) == 6
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 0.25 - 0.03, f"open-meteo-geocoding=4/second broken: {gaps}"


def test_weather_answers_and_unknown_places_are_clear(chat: Chat) -> None:
    chat.send("/weather paris")
    assert (
        chat.reply()
        == "Paris, Île-de-France, France: 9.8 °C (feels like 7.8 °C), partly cloudy, wind 14 km/h"
    )
    chat.send("/weather Atlantis")
    assert chat.reply() == "No such place: “atlantis”."


def test_reviews_merge_three_sources(chat: Chat, upstreams: Any) -> None:
    chat.send("/reviews pizza in Naples")
    lines = chat.reply(timeout=20).splitlines()
    assert lines[0] == "Reviews for pizza in naples:"
    entries = [line.split(". ", 1)[1] for line in lines[1:]]
    # Ranked by rating weighted by review count, with a prior so a few raves do not win.
    assert entries == [
        "Concettina ai Tre Santi — 4.7★ from 300 reviews (Foursquare)",
        "L'Antica Pizzeria da Michele — 4.6★ from 43,500 reviews (Yelp, Foursquare, Google)",
        "Pizzeria Starita — 4.9★ from 50 reviews (Google)",  # the one in Rome: not the same place
        "Gino e Toto Sorbillo — 4.5★ from 32,700 reviews (Yelp, Foursquare, Google)",  # name case differs
        "Pizzeria Starita — 4.5★ from 15,800 reviews (Yelp, Google)",
    ]
    assert [upstreams.count(s) for s in ("yelp", "foursquare", "google")] == [1, 1, 1]


def test_reviews_answer_from_two_when_the_third_times_out(chat: Chat, upstreams: Any) -> None:
    upstreams.script("foursquare", *[Fault(delay=1.5)] * 4)
    chat.send("/reviews pizza in Naples")
    reply = chat.reply(timeout=30)
    assert "(Yelp, Google)" in reply
    assert "Concettina" not in reply  # only Foursquare knows it
    assert reply.endswith("Missing: Foursquare (timed out).")


def test_reviews_answer_from_one_when_two_fail(chat: Chat, upstreams: Any) -> None:
    upstreams.script("yelp", *[Fault(status=500)] * 4)
    upstreams.script("google", *[Fault(status=502)] * 4)
    chat.send("/reviews pizza in Naples")
    reply = chat.reply(timeout=30)
    assert "Concettina ai Tre Santi — 4.7★ from 300 reviews (Foursquare)" in reply
    assert reply.endswith("Missing: Yelp (not answering); Google (not answering).")


def test_reviews_without_any_key_say_how_to_enable_them() -> None:
    settings = Settings(YELP_API_KEY="", FOURSQUARE_API_KEY="", GOOGLE_PLACES_API_KEY="")
    assert reviews.enabled_sources(settings) == []
    assert "set at least one of YELP_API_KEY" in i18n.render(reviews.NO_KEYS, "en")


def test_reviews_say_when_no_source_answers() -> None:
    text, answered = reviews.merge(
        [{"source": "yelp", "error": t("timed out")}, {"source": "google-places", "error": t("unavailable")}],
        {"what": "pizza", "place": "naples"},
    )
    assert not answered
    assert i18n.render(text, "en") == (
        "Sorry, no review source is answering right now: Yelp (timed out), Google (unavailable)."
    )
    assert i18n.render(text, "de") == (
        "Leider antwortet gerade keine Bewertungsquelle: "
        "Yelp (Zeitüberschreitung), Google (nicht erreichbar)."
    )


def test_reviews_parse_what_and_where() -> None:
    assert reviews.parse("Pizza in Naples") == {"what": "pizza", "place": "naples"}
    assert reviews.parse("dim sum in new york in winter") == {
        "what": "dim sum in new york",
        "place": "winter",
    }
    assert reviews.parse("ramen") == {"what": "ramen", "place": ""}


def test_a_console_reply_is_not_lost_when_the_bot_stalls_past_its_redis_timeout(
    bot_loop: Any, redis_client: Any
) -> None:
    """The console pops worker replies with a blocking pop. If the bot process stalls (GC,
    an overloaded host) past the socket timeout while Redis hands it a reply, redis-py
    times the read out and drops the connection — and the popped reply with it (seen once in
    `make test`: a /fx answer the worker delivered never showed). The stall here is the
    fault injected: the loop thread is blocked while the worker's sender pushes the reply."""
    import queue as queue_module
    import time

    from bot.core.request import Reply, Request
    from bot.main import make_redis
    from bot.pipeline import Pipeline
    from bot.platforms.console import sender
    from bot.platforms.console.adapter import ConsoleAdapter
    from config import get_settings
    from tasks.enqueue import CeleryQueue

    settings = get_settings().model_copy(update={"REDIS_TIMEOUT": 0.5})  # socket timeout 1.5 s
    replies: queue_module.Queue[str] = queue_module.Queue()

    async def start() -> ConsoleAdapter:
        pipeline = Pipeline(settings, make_redis(settings), CeleryQueue(settings))
        adapter = ConsoleAdapter(pipeline, settings, replies.put, user="stall")
        await adapter.connect()
        return adapter

    adapter = bot_loop.run(start())
    request = Request("console", adapter.session, "stall", f"console:{adapter.session}-1", "fx", "1 EUR USD")
    adapter.pending.add(request.request_id)
    blocked, release = threading.Event(), threading.Event()
    socket_timeout = 1 + settings.REDIS_TIMEOUT  # the console client's: POLL_SECONDS + REDIS_TIMEOUT

    def stall() -> None:  # the injected fault: the loop thread blocked until the test lets go
        blocked.set()
        release.wait(15)

    # The listener's blocking pop is waiting in Redis when the stall begins.
    def popping() -> bool:
        clients = redis_client.client_list()
        return any(c.get("cmd") in ("blpop", "blmove") and "b" in c.get("flags", "") for c in clients)

    assert wait_until(popping, timeout=5)
    bot_loop.loop.call_soon_threadsafe(stall)
    assert blocked.wait(5)
    stalled_at = time.monotonic()
    sender.send(redis_client, request, Reply("1.00 EUR = 1.09 USD"))
    try:
        # Let the loop go once Redis has handed the reply to the stalled pop and that pop's
        # read has outlived the socket timeout (it began before the stall).
        key = keys.console_replies(adapter.session)
        assert wait_until(lambda: redis_client.llen(key) == 0, timeout=5), "the pop never took it"
        assert wait_until(lambda: time.monotonic() - stalled_at > socket_timeout + 0.1, timeout=5)
        release.set()
        assert replies.get(timeout=10) == "1.00 EUR = 1.09 USD"
    finally:
        release.set()
        bot_loop.run(adapter.disconnect())
