"""Benchmark the gate: decisions/s and latency of the one-round-trip Lua script, beside the
same decision made as separate Redis calls, beside a bare GET (the physical floor).

    .venv/bin/python bench/gate.py [--n 20000]

Prints figures and ratios; never fails on a number. Runs against a private redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis.asyncio as aioredis

from bot.core import cache, keys
from bot.core.gate import Gate
from bot.core.request import Request
from config import Settings
from dev.redis_server import RedisServer


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(
    n: int, calls: dict[str, Callable[[int], Awaitable[object]]]
) -> dict[str, dict[str, float]]:
    """Round-robin over the variants, so that noise on a shared machine hits them alike."""
    for i in range(500):  # warm-up: script loaded, connections open
        for call in calls.values():
            await call(-i - 1)
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(n):
        for name, call in calls.items():
            t0 = time.perf_counter()
            await call(i)
            latencies[name].append(time.perf_counter() - t0)
    return {
        name: {
            "per_s": len(values) / sum(values),
            "p50_us": _percentile(values, 0.50) * 1e6,
            "p99_us": _percentile(values, 0.99) * 1e6,
            "mean_us": statistics.fmean(values) * 1e6,
        }
        for name, values in latencies.items()
    }


async def run(n: int, users: int) -> None:
    server = RedisServer().start()
    try:
        url = f"{server.url}/0"
        settings = Settings(REDIS_URL=url, RATE_LIMIT="1000000/second", RATE_LIMIT_BURST=1000)
        client = aioredis.Redis.from_url(url)
        gate = Gate(client, settings)
        await client.set("cache:fx:bench", cache.encode("1 EUR = 1.09 USD", "answer", 3600))

        def request(i: int) -> Request:
            return Request("bench", "c", f"user{i % users}", f"bench:{i}", "fx", "1 EUR USD")

        async def lua(i: int) -> object:
            return await gate.check(request(i), "cache:fx:bench")

        async def separate(i: int) -> object:
            # The same decision as separate calls (same data layout): what the script saves.
            req = request(i)
            if not await client.set(keys.seen(f"sep-{req.request_id}"), 1, nx=True, ex=86400):
                return "duplicate"
            admin = await client.hmget(
                keys.ADMIN,
                [keys.MAINTENANCE_FIELD, keys.ban_field(req.user_key), keys.limit_field(req.user_key)],
            )
            if admin[1]:
                return "banned"
            if admin[0]:
                return "maintenance"
            now = int(time.time() * 1000)
            tat = int(await client.get(keys.rate(f"sep-{req.user_key}")) or now)
            new_tat = max(tat, now) + 1
            await client.set(keys.rate(f"sep-{req.user_key}"), new_tat, px=max(1, new_tat - now))
            return await client.get("cache:fx:bench")

        async def bare(i: int) -> object:
            return await client.get("cache:fx:bench")

        results = await _measure(
            n, {"bare GET (floor)": bare, "gate (1 Lua call)": lua, "separate calls": separate}
        )
        floor = results["bare GET (floor)"]
        print(
            f"gate benchmark: {n} sequential decisions per variant, interleaved; redis-server {server.binary}"
        )
        print(f"{'variant':<20} {'decisions/s':>12} {'p50 µs':>9} {'p99 µs':>9} {'p50 × floor':>12}")
        for name, r in results.items():
            ratio = r["p50_us"] / floor["p50_us"]
            print(f"{name:<20} {r['per_s']:>12,.0f} {r['p50_us']:>9.0f} {r['p99_us']:>9.0f} {ratio:>12.2f}")
        gate_r, sep_r = results["gate (1 Lua call)"], results["separate calls"]
        print(f"separate calls p50 / gate p50: {sep_r['p50_us'] / gate_r['p50_us']:.2f}×")

        # Where the gate's extra time goes on the server: Redis' own accounting of EVALSHA
        # (INFO commandstats) for the gate, and for a script that does nothing with the same
        # arguments (the cost of running any script at all).
        nothing = await client.script_load("return 'pass:'")

        async def empty_script(i: int) -> object:
            names = [f"k{n}" for n in range(8)] + ["a"] * 7
            return await client.evalsha(nothing, 8, *names)

        server_us = {}
        for name, call, stat in (
            ("gate", lua, "evalsha"),
            ("empty script", empty_script, "evalsha"),
            ("GET", bare, "get"),
        ):
            await client.config_resetstat()
            for i in range(5000):
                await call(n + i)
            server_us[name] = float((await client.info("commandstats"))[f"cmdstat_{stat}"]["usec_per_call"])
        print(
            f"time inside Redis per call: gate {server_us['gate']:.1f} µs, an empty script with the same "
            f"arguments {server_us['empty script']:.1f} µs, a bare GET {server_us['GET']:.1f} µs"
        )

        # Memory per rate-limited user: one GCRA key with an expiry each.
        await client.flushdb()
        before = int((await client.info("memory"))["used_memory"])
        limited = Settings(REDIS_URL=url, RATE_LIMIT="1/minute", RATE_LIMIT_BURST=1)
        limited_gate = Gate(client, limited)
        for i in range(users):
            await limited_gate.check(Request("bench", "c", f"m{i}", f"m:{i}", "ping", ""), None)
        await client.delete(*[keys.seen(f"m:{i}") for i in range(users)])
        after = int((await client.info("memory"))["used_memory"])
        one = await client.memory_usage(keys.rate("bench:m0"))
        ttl = await client.pttl(keys.rate("bench:m0"))
        print(
            f"memory per rate-limited user: {(after - before) / users:.0f} bytes (used_memory delta over "
            f"{users} users); MEMORY USAGE of one key: {one} bytes; expiry set: {ttl > 0}"
        )
        await client.aclose()
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="decisions per variant")
    parser.add_argument("--users", type=int, default=10_000, help="distinct users")
    args = parser.parse_args()
    asyncio.run(run(args.n, args.users))


if __name__ == "__main__":
    main()
