"""Benchmark the subscription tick's own work: Redis bytes per subscription, and one tick over
N due subscriptions spread over L distinct lookups — with every answer cached (all become
notifications) and with none cached (one lookup per distinct lookup, everyone else waiting) —
without the delivery itself (the tasks go to a broker nobody consumes; bench/fanout.py, still
to come, measures the whole way to the platform).

    .venv/bin/python bench/subscriptions.py [--subscriptions 100000] [--lookups 500]

Prints figures; never fails on a number. Runs against a private redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dev.redis_server import RedisServer


def used_memory(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


async def subscribe(n: int, lookups: int) -> None:
    """N users each /daily one of `lookups` fx lookups, through the command's own code."""
    from bot.commands.subscriptions import daily, parse_daily
    from bot.core.request import Request
    from bot.main import make_redis
    from config import get_settings

    client = make_redis(get_settings())
    for i in range(n):
        request = Request(
            "telegram",
            str(10_000 + i),
            str(10_000 + i),
            f"telegram:{i}",
            "daily",
            "",
            {"chat_type": "private"},
        )
        await daily(client, request, parse_daily(f"fx {1 + i % lookups} EUR USD at 07:30"))
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=500)
    args = parser.parse_args()
    server = RedisServer().start()
    os.environ["REDIS_URL"] = f"{server.url}/0"
    os.environ["CELERY_BROKER_URL"] = f"{server.url}/1"
    os.environ["SUBSCRIPTIONS_PER_USER"] = "10"
    try:
        import redis

        from bot.commands import registry
        from bot.core import cache, keys
        from bot.core.i18n import number, t
        from tasks.subscriptions import subscriptions_tick

        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        broker = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
        before = used_memory(client)
        started = time.perf_counter()
        asyncio.run(subscribe(args.subscriptions, args.lookups))
        created = time.perf_counter() - started
        per_sub = (used_memory(client) - before) / args.subscriptions
        fx = registry.get("fx")
        assert fx is not None

        def run_tick(label: str) -> None:
            every: Any = client.zrange(keys.SUBSCRIPTIONS_DUE, 0, -1)
            client.zadd(keys.SUBSCRIPTIONS_DUE, dict.fromkeys(every, 0))  # all due now
            broker.flushdb()
            begun = time.perf_counter()
            handled = 0
            while handled < args.subscriptions:
                done = subscriptions_tick()
                if not done:
                    break
                handled += done
            took = time.perf_counter() - begun
            tasks = broker.llen(os.environ.get("CELERY_QUEUE", "bot"))
            print(f"{label:42} {handled:>9,} {took:9.2f} s {handled / took:12,.0f}/s {tasks:>8,} tasks")

        what = f"{args.subscriptions:,} /daily subscriptions over {args.lookups} lookups"
        print(f"{what} (created in {created:.1f} s)")
        print(f"Redis memory per subscription: {per_sub:,.0f} bytes (hash, user set, due entry)")
        print(f"{'tick':42} {'handled':>9} {'time':>11} {'rate':>14} {'published':>14}")
        run_tick("no answer cached (one lookup each)")
        client.delete(
            *[keys.inflight(fx.cache_key(fx.parse(f"{1 + i} EUR USD"))) for i in range(args.lookups)]
        )
        for i in range(args.lookups):
            text = t("{amount}", amount=number(1 + i, "#,##0.00"))
            client.set(
                fx.cache_key(fx.parse(f"{1 + i} EUR USD")), cache.encode(text, "answer", 3600), ex=3600
            )
        run_tick("every answer cached (all notified)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
