"""Chaos under a steady load (loopback only, bounded): worker processes killed mid-lookup,
an upstream failing a third of the time, a user flooding at 100 messages/s."""

from __future__ import annotations

import asyncio
import functools
import math
import os
import signal
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from bot.core.request import Request
from bot.main import make_redis
from bot.pipeline import Pipeline
from config import get_settings
from dev.redis_server import RedisServer
from tasks.enqueue import CeleryQueue
from tests.conftest import Chat, LoopThread, Worker, amqp_url_or_skip, wait_until
from tests.scale import scale
from tests.stacks import running_stack, start_stack


def pool_children(pid: int) -> list[int]:
    """The prefork pool processes of a Celery worker (children of its main process)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def steady(chats: list[Chat], lines: list[str], per_second: float) -> None:
    """Send one line per chat at a steady rate (the load the chaos happens under)."""
    started = time.monotonic()
    for n, (chat, line) in enumerate(zip(chats, lines, strict=True)):
        wait = started + n / per_second - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # pacing the load generator, not waiting for a result
        chat.send(line)


def test_killing_worker_processes_mid_lookup_loses_and_duplicates_nothing(
    make_chat: Any, worker: Worker, upstreams: Any
) -> None:
    upstreams.latency["fx"] = 0.6  # lookups are in flight when the processes die
    requests_sent, kills = scale(30, 300), scale(1, 5)
    chats = [make_chat() for _ in range(requests_sent)]
    lines = [f"/fx {100 + n} USD EUR" for n in range(requests_sent)]
    assert worker.process is not None
    victims: list[int] = []

    def reached(calls: int) -> bool:
        return bool(upstreams.count("fx") >= calls)

    def kill_pool() -> None:
        for round_ in range(kills):
            # lookups are running: a few more reached the upstream since the last kill
            wait_until(functools.partial(reached, 2 + round_ * 20), timeout=30)
            for pid in pool_children(worker.process.pid):  # type: ignore[union-attr]
                os.kill(pid, signal.SIGKILL)
                victims.append(pid)

    import threading

    killer = threading.Thread(target=kill_pool)
    killer.start()
    steady(chats, lines, per_second=30)
    killer.join(60)
    assert len(victims) >= kills, "the pool was not killed as often as planned"
    # Two pool processes work through 0.6 s lookups: ~0.3 s per request once queued.
    deadline = time.monotonic() + 30 + requests_sent * 0.6
    missing = []
    for n, chat in enumerate(chats):
        try:
            reply = chat.reply(timeout=max(0.1, deadline - time.monotonic()))
        except AssertionError:
            missing.append(100 + n)
            continue
        assert reply.startswith(f"{100 + n}.00 USD = ")
    assert not missing, f"no reply to /fx {missing} USD EUR"
    for chat in chats:
        chat.assert_no_reply(within=0.1)
    assert "WorkerLostError" in worker.logs() or "exited with 'signal 9" in worker.logs()


def test_every_request_is_answered_while_the_upstream_fails_often(make_chat: Any, upstreams: Any) -> None:
    upstreams.random_faults["fx"] = (0.3, 0.1)  # 30% 503s, 10% timeouts
    requests_sent = scale(30, 300)
    chats = [make_chat() for _ in range(requests_sent)]
    steady(chats, [f"/fx {1000 + n} GBP USD" for n in range(requests_sent)], per_second=30)
    outcomes = {"answer": 0, "clear error": 0}
    for n, chat in enumerate(chats):
        reply = chat.reply(timeout=60)
        if reply.startswith(f"{1000 + n:,}.00 GBP = "):
            outcomes["answer"] += 1
        else:
            assert "not answering right now" in reply or "unavailable right now, try again in" in reply, reply
            outcomes["clear error"] += 1
    for chat in chats:
        chat.assert_no_reply(within=0.1)
    assert outcomes["answer"] > 0


def test_a_flooding_user_is_limited_while_others_keep_their_latency(
    bot_loop: LoopThread, worker: Worker
) -> None:
    settings = get_settings()
    seconds = scale(2, 20)

    async def scenario() -> tuple[list[float], list[float], tuple[list[str], float]]:
        client = make_redis(settings)
        pipeline = Pipeline(settings, client, CeleryQueue(settings))
        counter = iter(range(10**6))

        async def ask(user: str) -> tuple[float, str]:
            request = Request(
                "console", f"chat-{user}", user, f"console:flood-{next(counter)}-{time.time_ns()}", "ping", ""
            )
            started = time.perf_counter()
            outcome = await pipeline.handle(request)
            return time.perf_counter() - started, outcome.reply.shown if outcome.reply else ""

        async def others(rounds: int) -> list[float]:
            latencies = []
            for _ in range(rounds):
                results = await asyncio.gather(*(ask(f"calm-{n}") for n in range(5)))
                latencies += [t for t, _ in results]
                await asyncio.sleep(0.2)  # a calm user's pace
            return latencies

        async def flood() -> tuple[list[str], float]:
            replies = []
            started = time.monotonic()
            for _ in range(100 * seconds):  # 100 messages/s
                replies.append((await ask("flooder"))[1])
                await asyncio.sleep(0.01)  # the flooder's pace: about 100 messages/s
            return replies, time.monotonic() - started

        calm = await others(5)
        flooded, flood_result = await asyncio.gather(others(5 * seconds), flood())
        await client.aclose()
        return calm, flooded, flood_result

    calm, flooded, (flood_replies, flood_seconds) = bot_loop.run(scenario(), timeout=30 + 3 * seconds)
    # The burst, plus what the steady rate allows meanwhile; every other message is limited.
    rate = settings.rate
    allowed = settings.RATE_LIMIT_BURST + math.ceil(flood_seconds * rate.count / rate.period)
    pongs = flood_replies.count("pong")
    assert pongs <= allowed
    # Told once per limit window at most, else silence (and flooding keeps the window moving).
    notices = sum("try again in" in r for r in flood_replies)
    assert 1 <= notices <= 1 + flood_seconds * rate.count / rate.period
    assert flood_replies.count("") == len(flood_replies) - pongs - notices
    normal = statistics.quantiles(calm, n=20)[18]
    under_flood = statistics.quantiles(flooded, n=20)[18]
    # Loose on purpose (a shared 2-core machine): the flood must not push others out of range.
    assert under_flood <= normal * 10 + 0.05, (normal, under_flood)


# --- Redis and the broker going away -----------------------------------------------------
def test_a_redis_restart_is_survived_and_users_are_told_meanwhile(
    telegram: Any, make_tg_chat: Any, upstreams: Any
) -> None:
    """Redis (cache, gate and broker) restarts under load: users are told meanwhile, the bot
    and the worker reconnect by themselves, and lookups asked afterwards are answered.

    Lookups already inside a worker when Redis died come back after BROKER_VISIBILITY_TIMEOUT,
    like those of a worker lost whole (the next test).
    """
    server = RedisServer(persistent=True).start()
    worker, bot = start_stack(f"{server.url}/0", f"{server.url}/1", telegram)
    try:
        before, during, after = (make_tg_chat() for _ in range(3))
        before.send("/ping")
        assert before.reply() == "pong"
        server.stop(keep_data=True)
        during.send("/ping")
        assert during.reply() == "The bot is temporarily unavailable. Please try again in a minute."
        server.start()  # same port, same data
        assert wait_until(lambda: requests.get(f"{bot.url}/readyz", timeout=5).status_code == 200, timeout=30)
        after.send("/ping")
        assert after.reply() == "pong"
        late = make_tg_chat()
        late.send("/fx 333 EUR USD")  # needs the worker to have reconnected to the broker
        assert late.reply(timeout=60).startswith("333.00 EUR = ")
        for chat in (before, during, after, late):
            chat.assert_no_reply(within=0.1)
        assert bot.process is not None and bot.process.poll() is None, "the bot crashed"
        assert worker.process is not None and worker.process.poll() is None, "the worker crashed"
    finally:
        bot.stop()
        worker.stop()
        server.stop()
        telegram.state.webhook_url = ""


def test_a_broker_outage_tells_users_and_queued_work_completes_after(
    telegram: Any, make_tg_chat: Any, redis_server: Any
) -> None:
    """The broker (a Redis of its own here) stops while lookups wait in its queue."""
    app_redis = f"{redis_server.url}/5"
    broker = RedisServer(persistent=True).start()
    worker, bot = start_stack(app_redis, f"{broker.url}/0", telegram)
    try:
        worker.stop()  # lookups now wait in the broker's queue
        queued = [make_tg_chat() for _ in range(3)]
        for n, chat in enumerate(queued):
            chat.send(f"/fx {400 + n} EUR USD")
        # The three lookups wait in the broker's queue (a Redis list named after the queue).
        in_broker = redis.Redis.from_url(f"{broker.url}/0")
        assert wait_until(lambda: in_broker.llen(worker.env["CELERY_QUEUE"]) == 3, timeout=15)
        in_broker.close()
        broker.stop(keep_data=True)
        told = make_tg_chat()
        told.send("/fx 499 EUR USD")
        assert told.reply() == "The bot is temporarily unavailable. Please try again in a minute."
        broker.start()  # back, with its queue
        worker.start()
        for n, chat in enumerate(queued):
            assert chat.reply(timeout=60).startswith(f"{400 + n}.00 EUR = ")
        for chat in (*queued, told):
            chat.assert_no_reply(within=0.1)
        assert bot.process is not None and bot.process.poll() is None, "the bot crashed"
    finally:
        bot.stop()
        worker.stop()
        broker.stop()
        telegram.state.webhook_url = ""


@pytest.mark.parametrize(("broker", "within"), [("redis", 30.0), ("rabbitmq", 10.0)])
def test_a_worker_lost_whole_mid_lookup_is_answered_within_seconds(
    telegram: Any, make_tg_chat: Any, redis_server: Any, upstreams: Any, broker: str, within: float
) -> None:
    """The worker's main process dies with its pool (SIGKILL to the group, like a machine
    going away) while a lookup runs; nothing acks or requeues its message, and the Redis
    broker would hand it out again only after BROKER_VISIBILITY_TIMEOUT (300 s, left at its
    default). Another worker answers once, within `within` seconds of the loss: on Redis
    through the lookup's lease running out (LOOKUP_LEASE), on RabbitMQ through its requeue."""
    broker_url = f"{redis_server.url}/7" if broker == "redis" else amqp_url_or_skip()
    app_db = 6 if broker == "redis" else 13
    redis.Redis.from_url(f"{redis_server.url}/{app_db}").flushdb()
    worker, bot = start_stack(f"{redis_server.url}/{app_db}", broker_url, telegram)
    replacement = Worker(worker.env, name="replacement")
    try:
        upstreams.latency["fx"] = 0.8  # the lookups are in flight when the worker dies
        chats = [make_tg_chat() for _ in range(scale(1, 4))]  # heavy: more than its pool holds
        for n, chat in enumerate(chats):
            chat.send(f"/fx {555 + n} EUR USD")
        assert wait_until(lambda: upstreams.count("fx") == min(len(chats), worker.concurrency), timeout=15)
        assert worker.process is not None
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
        lost = time.monotonic()
        replacement.start()
        for n, chat in enumerate(chats):
            answer = chat.reply(timeout=within + 30)
            seconds = time.monotonic() - lost
            print(f"\n{broker}: answered {seconds:.1f} s after the worker was lost")
            assert answer.startswith(f"{555 + n:,}.00 EUR = ")
            assert seconds <= within, f"answered {seconds:.1f} s after the loss"
        for chat in chats:
            chat.assert_no_reply(within=0.5)
    finally:
        bot.stop()
        replacement.stop()
        worker.stop()
        telegram.state.webhook_url = ""


def test_killing_pool_processes_on_rabbitmq_loses_and_duplicates_nothing(
    telegram: Any, make_tg_chat: Any, redis_server: Any, upstreams: Any
) -> None:
    """The pool-kill chaos test on the production broker of choice: a worker's pool
    processes die mid-lookup; every request is answered once."""
    amqp = amqp_url_or_skip()
    redis.Redis.from_url(f"{redis_server.url}/14").flushdb()
    with running_stack(f"{redis_server.url}/14", amqp, telegram, WORKER_POOL="prefork") as (worker, _):
        upstreams.latency["fx"] = 0.6  # lookups are in flight when the processes die
        chats = [make_tg_chat() for _ in range(scale(8, 40))]
        for n, chat in enumerate(chats):
            chat.send(f"/fx {700 + n} USD EUR")
        assert wait_until(lambda: upstreams.count("fx") >= 2, timeout=15)
        assert worker.process is not None
        for _ in range(scale(1, 3)):
            for pid in pool_children(worker.process.pid):
                os.kill(pid, signal.SIGKILL)
            assert wait_until(lambda: len(pool_children(worker.process.pid)) >= 2, timeout=15)  # type: ignore[union-attr]
        for n, chat in enumerate(chats):
            assert chat.reply(timeout=60).startswith(f"{700 + n}.00 USD = ")
        for chat in chats:
            chat.assert_no_reply(within=0.2)
