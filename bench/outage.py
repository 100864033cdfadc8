"""Cache hits while the broker is away: do misses that cannot be queued slow the hits down?

    .venv/bin/python bench/outage.py [--seconds 5] [--inflight 8] [--misses 20]

One bot process (Telegram webhook mode) serves cache hits with `--inflight` updates in flight
while `--misses` distinct lookups a second arrive alongside (each needs a publish). Run twice
in one invocation: with the broker up, and with the broker unreachable (a port nobody listens
on), which makes every miss fail to publish. Prints hit throughput and latency for both and
the ratio of the p99s. Prints figures; never fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from telegram_hits import SECRET, BotApi, drive, hits_env, seed_hit, update, wait_healthy  # noqa: E402

from dev.redis_server import RedisServer, free_port  # noqa: E402


async def misses(url: str, per_second: float, stop: asyncio.Event) -> int:
    """Distinct /fx lookups at a steady pace; returns how many were sent."""
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
    ids = itertools.count(900_000_000)
    sent = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        pending: set[asyncio.Task[None]] = set()

        async def post(n: int) -> None:
            body = update(next(ids), 40_000_000 + n, f"/fx {n + 2} EUR USD")  # distinct: each a miss
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()

        while not stop.is_set():
            task = asyncio.create_task(post(sent))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
            await asyncio.sleep(1 / per_second)  # the misses' pace
        await asyncio.gather(*pending, return_exceptions=True)
    return sent


async def run_once(broker_up: bool, args: argparse.Namespace) -> dict[str, float]:
    server = RedisServer().start()
    api = BotApi()
    runner = await api.start()
    port = free_port()
    broker = f"{server.url}/1" if broker_up else f"redis://127.0.0.1:{free_port()}/0"
    redis_url = f"{server.url}/0"
    seed_hit(redis_url)
    env = hits_env(redis_url, broker, f"http://127.0.0.1:{api.port}", port, log_level="ERROR")
    bot = subprocess.Popen([sys.executable, "-m", "bot"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url, bot)
        stop = asyncio.Event()
        missing = asyncio.create_task(misses(f"{url}/telegram/webhook", args.misses, stop))
        started = time.perf_counter()
        result = await drive(api, [f"{url}/telegram/webhook"], args.inflight, args.seconds, "/fx 1 EUR USD")
        stop.set()
        result["misses_per_s"] = await missing / (time.perf_counter() - started)
        return result
    finally:
        bot.terminate()
        bot.wait(15)
        await runner.cleanup()
        server.stop()


async def run(args: argparse.Namespace) -> None:
    up = await run_once(True, args)
    down = await run_once(False, args)
    print(
        f"Cache hits with {args.inflight} in flight while {args.misses:g} misses/s arrive, "
        f"{args.seconds:g} s per run, {os.cpu_count()} cores"
    )
    print(f"{'broker':<12} {'hits/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'misses/s':>9}")
    for name, r in (("up", up), ("unreachable", down)):
        print(
            f"{name:<12} {r['per_s']:>8,.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>7.0f}"
            f" {r['misses_per_s']:>9.1f}"
        )
    print(f"hit p99, broker unreachable / up = {down['p99_ms'] / max(up['p99_ms'], 1e-9):.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--inflight", type=int, default=8)
    parser.add_argument("--misses", type=float, default=20.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
