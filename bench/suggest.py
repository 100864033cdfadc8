"""Benchmark Discord autocomplete on the bot's side: how long `Pipeline.suggest` takes to
answer from Redis — a cached currency list filtered for what was typed, a cached list of
places, and a miss (an empty list, a worker asked) — beside Discord's 3 s deadline.

    .venv/bin/python bench/suggest.py [--n 5000]

Prints figures and ratios; never fails on a number. Runs against a private redis-server; the
miss publishes to a broker nobody consumes (that queue is dropped with the server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dev.redis_server import RedisServer

DEADLINE_MS = 3000.0  # Discord drops an autocomplete not answered by then


async def measure(n: int, url: str) -> dict[str, list[float]]:
    os.environ["REDIS_URL"] = url
    from bot.core import keys
    from bot.main import make_redis
    from bot.pipeline import Pipeline
    from config import get_settings
    from tasks.enqueue import CeleryQueue

    settings = get_settings()
    client = make_redis(settings)
    currencies = [[f"{code} — Currency {code}", code] for code in ("AUD", "CHF", "EUR", "GBP", "JPY", "USD")]
    currencies += [[f"X{i:02d} — Test currency {i}", f"X{i:02d}"] for i in range(24)]  # ~Frankfurter's 30
    await client.set(keys.suggestions("currencies", ""), json.dumps(currencies))
    places = [[f"Paris, Region {i}, Country", "Paris"] for i in range(10)]
    await client.set(keys.suggestions("places", "par"), json.dumps(places))
    pipeline = Pipeline(settings, client, CeleryQueue(settings))
    cases = {
        "currencies, cached list filtered": lambda i: pipeline.suggest("currencies", "us"),
        "places, cached for what was typed": lambda i: pipeline.suggest("places", "Par"),
        "places, not cached (worker asked)": lambda i: pipeline.suggest("places", f"zz{i}"),
    }
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(200):  # warm-up
        for name, call in cases.items():
            if "not cached" not in name:
                await call(i)
    for i in range(n):
        for name, call in cases.items():
            started = time.perf_counter()
            await call(i)
            timings[name].append((time.perf_counter() - started) * 1000)
    await client.aclose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="autocompletes per case")
    args = parser.parse_args()
    server = RedisServer().start()
    os.environ.setdefault("CELERY_BROKER_URL", f"{server.url}/1")
    try:
        timings = asyncio.run(measure(args.n, f"{server.url}/0"))
    finally:
        server.stop()
    print(f"Discord autocomplete, bot side (Pipeline.suggest), {args.n} each, one client, 2 cores")
    print(f"{'case':38} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'deadline / p99':>15}")
    for name, values in timings.items():
        ordered = sorted(values)
        p99 = ordered[int(0.99 * (len(ordered) - 1))]
        print(
            f"{name:38} {statistics.median(values):8.3f} {p99:8.3f} {ordered[-1]:8.2f} "
            f"{DEADLINE_MS / p99:14,.0f}×"
        )


if __name__ == "__main__":
    main()
