"""Benchmark a whole subscription fan-out, beat to platform: N /daily subscriptions over L
distinct lookups, all due at once, notified through real Celery workers and beat to the
Telegram emulator, with the outbound limit raised to --rate (the paid-broadcast lane,
TELEGRAM_PAID_BROADCAST_RATE; each subscriber its own chat, Telegram's 1/s per chat enforced
by the emulator, with 429s).

    .venv/bin/python bench/fanout.py [--subscriptions 100000] [--lookups 500] [--rate 1000/second]
        [--workers 1] [--concurrency 16] [--kill] [--broker amqp://guest:guest@localhost:5672//]

Prints: Redis bytes per subscription; upstream calls for the tick (goal: one per distinct
lookup); the time from the first tick to the last notification against the limit's floor
N / rate (goal: within 10%); 429s the platform answered (goal 0); subscribers never told and
told twice (goal 0 and 0). --kill SIGKILLs the worker (its whole process group) halfway and
starts a replacement: on the Redis broker the batch it held comes back through its lease
(LOOKUP_LEASE, 10 s), on RabbitMQ at once. Never fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from subscriptions import subscribe, used_memory  # noqa: E402  (bench/, the script's folder)

from dev.redis_server import RedisServer  # noqa: E402
from tests.emulators.telegram import TelegramEmulator  # noqa: E402
from tests.emulators.upstreams import Upstreams  # noqa: E402

TOKEN = "7000002:AAH-fanout-bench-token_0123456789abcde"
FIRST_CHAT = 10_000  # bench/subscriptions.subscribe: subscriber i is chat 10,000 + i


def start_worker(env: dict[str, str], name: str, concurrency: int, log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-l", "WARNING", "-c", str(concurrency),
         "-n", f"{name}@%h", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=500)
    parser.add_argument("--rate", default="1000/second", help="the paid-broadcast lane's rate")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16, help="threads per worker")
    parser.add_argument("--kill", action="store_true", help="SIGKILL a worker halfway")
    parser.add_argument("--broker", default="", help="broker URL (default: the private Redis)")
    args = parser.parse_args()
    server = RedisServer().start()
    upstreams = Upstreams().start()
    telegram = TelegramEmulator(TOKEN).start()
    telegram.enforce_limits(per_chat=(1, 3))  # a second message to one chat soon after is a 429
    env = {
        **os.environ,
        "REDIS_URL": f"{server.url}/0",
        "CELERY_BROKER_URL": args.broker or f"{server.url}/1",
        "CELERY_QUEUE": f"fanout-{time.time_ns()}",
        "FX_API_URL": upstreams.url("fx"),
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": telegram.url,
        "TELEGRAM_PAID_BROADCAST_RATE": args.rate,
        "SUBSCRIPTION_TICK": "1",
        "SUBSCRIPTIONS_PER_USER": "10",
        "WORKER_METRICS_PORT": "0",
        "SENTRY_DSN": "",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    from config import parse_rate

    rate = parse_rate(args.rate)
    per_second = rate.count / rate.period
    log = open(tempfile.mkstemp(prefix="fanout-", suffix=".log")[1], "ab")  # noqa: SIM115
    processes: list[subprocess.Popen[bytes]] = []
    try:
        client = redis.Redis.from_url(env["REDIS_URL"])
        before = used_memory(client)
        started = time.perf_counter()
        asyncio.run(subscribe(args.subscriptions, args.lookups))
        per_sub = (used_memory(client) - before) / args.subscriptions
        print(
            f"{args.subscriptions:,} /daily subscriptions over {args.lookups} lookups, created in "
            f"{time.perf_counter() - started:.1f} s; Redis memory per subscription: {per_sub:,.0f} bytes"
        )
        from bot.core import keys

        every: Any = client.zrange(keys.SUBSCRIPTIONS_DUE, 0, -1)
        client.zadd(keys.SUBSCRIPTIONS_DUE, dict.fromkeys(every, 0))  # all due now
        workers = [start_worker(env, f"w{n}", args.concurrency, log) for n in range(args.workers)]
        processes += workers
        from tasks.app import app

        while len(app.control.ping(timeout=1)) < args.workers:  # started: their start-up not counted
            if any(w.poll() is not None for w in workers):
                raise RuntimeError("a worker exited at start")
        began = time.monotonic()
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tasks", "beat", "-l", "WARNING",
             "-s", tempfile.mkstemp(prefix="fanout-beat-")[1]],
            cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True,
        ))  # fmt: skip
        killed_at = None
        last_count, last_change = 0, time.monotonic()
        while True:
            count = len(telegram.sent)
            if count >= args.subscriptions or time.monotonic() - last_change > 60:
                break
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            if args.kill and killed_at is None and count >= args.subscriptions // 2:
                os.killpg(workers[0].pid, signal.SIGKILL)
                workers[0].wait()
                killed_at = count
                processes.append(start_worker(env, "replacement", args.concurrency, log))
                print(f"worker SIGKILLed after {count:,} notifications; a replacement started")
            time.sleep(0.2)  # progress poll of the bench, not a synchronisation
        time.sleep(2)  # late duplicates, if any, have time to arrive
        with telegram._lock:
            sent = list(telegram.sent)
        per_chat = Counter(s.chat_id for s in sent)
        expected = {FIRST_CHAT + i for i in range(args.subscriptions)}
        lost = len(expected - per_chat.keys())
        twice = sum(n - 1 for n in per_chat.values() if n > 1)
        took = (max(s.t for s in sent) - began) if sent else float("nan")
        floor = args.subscriptions / per_second
        print(f"upstream calls: {upstreams.count('fx'):,} for {args.lookups} distinct lookups")
        print(
            f"notified {len(per_chat):,} of {args.subscriptions:,} in {took:.1f} s; the limit's floor "
            f"N / rate = {floor:.1f} s (ratio {took / floor:.2f}); {len(sent) / took:,.0f} notifications/s"
        )
        print(f"platform 429s: {telegram.too_many}; lost: {lost}; duplicated: {twice}")
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        telegram.stop()
        upstreams.stop()
        server.stop()


if __name__ == "__main__":
    main()
