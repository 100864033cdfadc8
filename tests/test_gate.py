"""The gate: one Redis round trip per message, and what it decides."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import redis

from bot.commands import registry
from bot.core import cache, gate
from bot.core.request import Request
from bot.main import make_redis, warm_redis
from bot.pipeline import Pipeline
from config import get_settings
from dev.redis_server import RedisServer
from tasks.enqueue import CeleryQueue
from tests.conftest import LoopThread


def _request(n: int, user: str = "u1", command: str = "ping", args: str = "") -> Request:
    return Request("console", "c1", user, f"console:rt-{n}", command, args)


class CommandLog:
    """Every command a network client sends to a Redis server, read through MONITOR.

    Commands run inside a Lua script show as client type "lua" and are not round trips.
    """

    def __init__(self, url: str):
        self.client = redis.Redis.from_url(url)
        self.monitor = self.client.monitor()
        self.monitor.__enter__()
        self.commands: list[dict[str, Any]] = []

    def collect_until(self, marker: str) -> list[str]:
        for entry in self.monitor.listen():
            if entry["command"] == f"ECHO {marker}":
                break
            if entry.get("client_type") != "lua":
                self.commands.append(entry)
        self.monitor.__exit__(None, None, None)
        self.client.close()
        return [c["command"].split()[0].upper() for c in self.commands]

    def scripts_until(self, marker: str) -> list[str]:
        """Like collect_until, with a script call named by its script: "gate" or "settle"."""
        names = {gate.SHA: "gate", hashlib.sha1(gate.SETTLE.encode()).hexdigest(): "settle"}
        self.collect_until(marker)
        calls = [c["command"].split()[:2] for c in self.commands]
        return [names.get(c[1], c[1]) if c[0].upper() == "EVALSHA" else c[0].upper() for c in calls]


def _warm_pipeline(bot_loop: LoopThread, settings: Any) -> Pipeline:
    """A pipeline on a client set up as the bot's is at start (pool opened, scripts loaded)."""

    async def start() -> Pipeline:
        client = make_redis(settings)
        await warm_redis(client)
        return Pipeline(settings, client, CeleryQueue(settings))

    result: Pipeline = bot_loop.run(start())
    return result


def _seed_fx_hit(seed: redis.Redis, text: str) -> None:
    """`/fx 1 EUR USD` answered from the cache with `text`."""
    fx = registry.get("fx")
    assert fx is not None
    seed.set(fx.cache_key({"amount": "1", "from": "EUR", "to": "USD"}), cache.encode(text, "answer", 3600))


def test_gate_costs_one_round_trip_per_message(bot_loop: LoopThread, worker) -> None:
    """Hits, misses, local answers, usage errors and limited messages: one EVALSHA each and
    nothing else; a message's done-mark rides on the next one's gate call, and the last
    one's is written alone when no message follows (here: at close)."""
    server = RedisServer().start()
    try:
        settings = get_settings().model_copy(update={"REDIS_URL": f"{server.url}/0"})
        seed = redis.Redis.from_url(settings.REDIS_URL)
        pipeline = _warm_pipeline(bot_loop, settings)
        _seed_fx_hit(seed, "1 EUR = 1.09 USD")

        log = CommandLog(settings.REDIS_URL)

        async def messages() -> list[str]:
            decisions = []
            for n, (command, args) in enumerate(
                [("fx", "1 EUR USD"), ("ping", ""), ("fx", ""), ("nope", ""), ("wiki", "Alan Turing")]
                + [("ping", "")] * 5,
                start=1,
            ):
                outcome = await pipeline.handle(_request(n, command=command, args=args))
                decisions.append(outcome.decision)
            await pipeline.close()
            return decisions

        decisions = bot_loop.run(messages())
        seed.echo("end-of-test")
        commands = log.scripts_until("end-of-test")
        assert decisions[:5] == ["hit", "local", "usage", "usage", "miss"]
        assert "limited" in decisions
        # Done-marks go alone only after SETTLE_DELAY without a message (this loop may pause
        # that long once, publishing the miss) and at close.
        assert commands.count("gate") == len(decisions), commands
        assert commands[-1] == "settle" and commands.count("settle") <= 2, commands
        assert set(commands) == {"gate", "settle"}, commands
        marks = [seed.get(f"seen:console:rt-{n}") for n in range(1, len(decisions) + 1)]
        assert marks == [b"d"] * len(decisions), marks
        seed.close()
    finally:
        server.stop()


def test_a_cold_burst_opens_no_connections_and_costs_one_round_trip_each(bot_loop: LoopThread) -> None:
    """50 hits at once, the first messages after start-up: the pool was opened and the script
    loaded before them, so each costs its EVALSHA and nothing else — no connection set-up
    (CLIENT SETINFO), no PING, no EVAL of the whole script."""
    server = RedisServer().start()
    try:
        settings = get_settings().model_copy(update={"REDIS_URL": f"{server.url}/0", "RATE_LIMIT_BURST": 100})
        seed = redis.Redis.from_url(settings.REDIS_URL)
        _seed_fx_hit(seed, "1 EUR")
        pipeline = _warm_pipeline(bot_loop, settings)
        connections_before = seed.info("stats")["total_connections_received"]
        log = CommandLog(settings.REDIS_URL)

        async def burst() -> list[str]:
            outcomes = await asyncio.gather(
                *(
                    pipeline.handle(_request(n, user=f"u{n}", command="fx", args="1 EUR USD"))
                    for n in range(50)
                )
            )
            await pipeline.close()
            await pipeline.redis.aclose()
            return [o.decision for o in outcomes]

        decisions = bot_loop.run(burst())
        seed.echo("end-of-burst")
        commands = log.scripts_until("end-of-burst")
        assert decisions == ["hit"] * 50
        opened = seed.info("stats")["total_connections_received"] - connections_before
        assert opened == 1, "only this test's own MONITOR client connected"
        # The fifty answers' done-marks: carried by later gate calls, the rest in one command.
        assert commands.count("gate") == 50 and commands.count("settle") <= 1, commands
        assert set(commands) <= {"gate", "settle"}, commands
        seed.close()
    finally:
        server.stop()


def test_rate_state_is_one_small_key_with_an_expiry(chat, redis_client) -> None:
    chat.send("/ping")
    chat.immediate_reply()
    keys = redis_client.keys(f"rl:console:{chat.user}")
    assert len(keys) == 1
    assert 0 < redis_client.pttl(keys[0]) <= 2000
    assert redis_client.memory_usage(keys[0]) < 200


def test_the_minute_stats_hash_counts_outcomes_and_expires(chat, redis_client) -> None:
    redis_client.delete(*redis_client.keys("stats:*") or ["-"])
    for _ in range(3):
        chat.send("/ping")
        chat.immediate_reply()
    stats = redis_client.keys("stats:*")  # one, or two if a minute turned meanwhile
    assert sum(int(redis_client.hget(key, "pass") or 0) for key in stats) == 3
    assert all(0 < redis_client.ttl(key) <= 7200 for key in stats)


def test_banned_user_is_told_once_then_ignored(make_chat, redis_client) -> None:
    chat = make_chat()
    redis_client.hset("admin", f"ban:console:{chat.user}", "spam")
    chat.send("/ping")
    assert chat.immediate_reply() == "You are blocked from using this bot."
    chat.send("/fx 1 EUR USD")
    chat.assert_no_reply(within=0.3)


def test_maintenance_message_replaces_lookups(chat, redis_client, upstreams) -> None:
    redis_client.hset("admin", "maintenance", "Back at 14:00 UTC.")
    chat.send("/fx 1 EUR USD")
    assert chat.immediate_reply() == "Back at 14:00 UTC."
    assert upstreams.count("fx") == 0


def test_redis_down_gets_a_clear_message(bot_loop: LoopThread) -> None:
    from bot.core import i18n
    from bot.core.phrases import UNAVAILABLE

    settings = get_settings().model_copy(update={"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_TIMEOUT": 0.5})

    async def handle() -> str | None:
        client = make_redis(settings)
        outcome = await Pipeline(settings, client, CeleryQueue(settings)).handle(_request(1))
        await client.aclose()
        return outcome.reply.shown if outcome.reply else None

    assert bot_loop.run(handle()) == i18n.render(UNAVAILABLE, "en")


def test_a_request_survives_its_json_round_trip_with_every_field() -> None:
    """to_dict() is spelled out for speed: it must still carry every field there is."""
    import dataclasses

    request = Request(
        "telegram", "42", "7", "telegram:99", "fx", "1 EUR USD", {"message_id": 5, "chat_type": "group"}, 12.5
    )
    data = request.to_dict()
    assert set(data) == {f.name for f in dataclasses.fields(Request)}
    assert Request.from_dict(json.loads(json.dumps(data))) == request
    data["meta"]["message_id"] = 6
    assert request.meta["message_id"] == 5, "the dict is a copy"


def test_rates_above_a_thousand_a_second_are_kept_not_refused_by_redis(bot_loop: LoopThread) -> None:
    """An emission interval under a millisecond (paid broadcasts allow 1,000/s; an operator may
    lift a limit further) once made the gate ask Redis for a PX of 0 ms — "invalid expire
    time" — and every such message was told the bot is unavailable. Fractions of a
    millisecond are kept too: 3,000/s admits 3 messages per millisecond, not unlimited."""
    from bot.core import limits
    from bot.core.limits import Bucket

    server = RedisServer().start()
    try:
        settings = get_settings().model_copy(
            update={"REDIS_URL": f"{server.url}/0", "RATE_LIMIT": "5000/second", "RATE_LIMIT_BURST": 1}
        )

        async def run() -> list[str]:
            client = make_redis(settings)
            await warm_redis(client)
            gate_ = gate.Gate(client, settings)
            fast = (Bucket("ob:test:bot", 1000 / 3000, 1),)
            decisions = []
            for n in range(40):
                decision = await gate_.check(_request(n, user=f"u{n % 2}"), None, outbound=fast)
                decisions.append(decision.outcome + ("!" if decision.deferred else ""))
            await client.aclose()
            return decisions

        decisions = bot_loop.run(run())
        assert set(decisions) <= {"pass", "pass!", "limited", "limited!", "limited_silent"}, decisions
        assert "pass" in decisions, decisions
        # The workers' side of the same buckets (limits.lua): it waits, never errs.
        sync = redis.Redis.from_url(settings.REDIS_URL)
        for _ in range(20):
            limits.acquire(sync, [Bucket("ob:test:bot", 1000 / 3000, 1)])
        sync.close()
    finally:
        server.stop()
