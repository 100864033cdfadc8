"""Miss overhead: what the pipeline adds to an upstream's own latency, ours against the baseline.

    .venv/bin/python bench/miss.py [--requests 40] [--latency 0.5] [--pool prefork]

One user sends distinct lookups one after another (every one a miss, nothing queued behind
another) through the Telegram emulator in webhook mode; the emulated upstream answers each in
exactly --latency seconds. Prints the reply latency minus the upstream latency (p50, p95, max)
for our stack (gate, Celery lookup, delivery from the worker) and for the bare
python-telegram-bot baseline that calls the upstream in its handler. Prints figures; never
fails on a number.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from load import TOKEN, _replied, bot_stack  # noqa: E402

from dev.redis_server import RedisServer  # noqa: E402
from tests.emulators.telegram import TelegramEmulator  # noqa: E402
from tests.emulators.upstreams import Upstreams  # noqa: E402


def overheads(telegram: TelegramEmulator, requests: int, latency: float, first: int = 1) -> list[float]:
    """`requests` distinct lookups from `first` on (a range no other call uses: each a miss)."""
    chat = 91_000_000
    samples = []
    for n in range(first, first + requests):
        before = len(telegram.messages(chat))
        started = time.monotonic()
        telegram.push(telegram.message_update(chat, chat, f"/fx {n} EUR USD"))
        if telegram.wait_for(functools.partial(_replied, telegram, chat, before), 30):
            samples.append(time.monotonic() - started - latency)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.5, help="upstream latency, seconds")
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads"], help="worker pool")
    parser.add_argument("--concurrency", type=int, default=8, help="worker pool size (ours)")
    args = parser.parse_args()

    server = RedisServer().start()
    upstreams = Upstreams().start()
    telegram = TelegramEmulator(TOKEN).start()
    results: dict[str, list[float]] = {}
    try:
        for variant in ("ours", "baseline"):
            redis.Redis.from_url(f"{server.url}/0").flushall()
            upstreams.reset()
            telegram.reset()
            upstreams.latency_range["fx"] = (args.latency, args.latency)
            with bot_stack(variant, server.url, upstreams, telegram, args.concurrency, args.pool):
                # Warm-up (connections, imports) on amounts the measurement never asks: a
                # warm-up answer in the cache would turn measured misses into hits.
                overheads(telegram, 3, args.latency, first=100_000)
                results[variant] = overheads(telegram, args.requests, args.latency)
    finally:
        telegram.stop()
        upstreams.stop()
        server.stop()

    print(
        f"miss overhead: {args.requests} sequential misses, upstream {args.latency * 1000:.0f} ms, "
        f"{args.pool} pool, {os.cpu_count()} cores"
    )
    print(f"{'bot':<9} {'answered':>8} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}")
    for name, values in results.items():
        if len(values) < 2:
            print(f"{name:<9} {len(values):>8}   n/a")
            continue
        q = statistics.quantiles(values, n=100)
        print(f"{name:<9} {len(values):>8} {q[49] * 1000:7.1f} {q[94] * 1000:7.1f} {max(values) * 1000:7.1f}")
    if all(len(v) > 1 for v in results.values()):
        extra = statistics.median(results["ours"]) - statistics.median(results["baseline"])
        print(f"ours above the baseline at p50: {extra * 1000:.1f} ms")


if __name__ == "__main__":
    main()
