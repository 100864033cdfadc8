"""Hit-path throughput of one bot process on Telegram webhook mode, beside bare PTB echo bots.

    .venv/bin/python bench/telegram_hits.py [--seconds 5] [--inflight 8 64] [--processes 2]

Every update is a cache hit for our bot (the answer is seeded in Redis; many distinct users so
the rate limit never bites). A load generator keeps N updates in flight: it POSTs an update
to the bot's webhook and counts it done when the bot's sendMessage reaches the emulated Bot
API (in this process) — or, when the bot answers in the webhook's response, when that
response arrives (Telegram then executes it). Ours runs with answers in the response (the
default) and with them off (TELEGRAM_WEBHOOK_REPLIES=off), to show what each part buys.
Prints msgs/s and reply latency percentiles, and ratios against:
  - a bare PTB echo bot with PTB's default (httpx) transport,
  - the same echo bot on our aiohttp transport (the floor PTB's own update handling sets).
Prints figures; never fails on a number. BENCH_ONLY="our bot" runs one variant;
BENCH_PROFILE=/tmp/p.txt records a py-spy profile of it (py-spy must be installed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import redis  # noqa: E402
from aiohttp import web  # noqa: E402

from bot.commands import registry  # noqa: E402
from bot.core import cache  # noqa: E402
from bot.core.i18n import day, number, t  # noqa: E402
from dev.redis_server import RedisServer, free_port  # noqa: E402

TOKEN = "1:bench"
SECRET = "bench-secret-0123456789"
USERS = 50_000


class BotApi:
    """Just enough Bot API for the benchmark; sendMessage resolves the waiting sender."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[float]] = {}
        self.port = free_port()

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self.dispatch)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, backlog=1024).start()
        return runner

    async def dispatch(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        form = await request.post()
        result: Any = True
        if method == "getMe":
            result = {"id": 1, "is_bot": True, "first_name": "Bench", "username": "BenchBot"}
        elif method == "sendMessage":
            chat_id = int(str(form["chat_id"]))
            future = self.waiting.pop(chat_id, None)
            if future is not None and not future.done():
                future.set_result(time.perf_counter())
            result = {
                "message_id": 1,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "text": str(form.get("text", "")),
            }
        return web.json_response({"ok": True, "result": result})


def seed_hit(redis_url: str) -> None:
    """Cache the answer to `/fx 1 EUR USD`, the message the hit benches send."""
    command = registry.get("fx")
    assert command is not None
    seed = redis.Redis.from_url(redis_url)
    seed.set(
        command.cache_key({"amount": "1", "from": "EUR", "to": "USD"}),
        # What a worker caches: a message rendered per reader (numbers and date for the locale).
        cache.encode(
            t(
                "{amount} {src} = {converted} {dst} (ECB rate of {date})",
                amount=number(1, "#,##0.00"),
                src="EUR",
                converted=number(Decimal("1.09"), "#,##0.00"),
                dst="USD",
                date=day("2026-11-27"),
            ),
            "answer",
            86400,
            params={"amount": "1", "from": "EUR", "to": "USD"},
        ),
    )
    seed.close()


def update(update_id: int, chat_id: int, text: str) -> bytes:
    """A private-chat message update; a command carries the entity PTB looks for."""
    return json.dumps(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private", "first_name": "U"},
                "from": {"id": chat_id, "is_bot": False, "first_name": "U"},
                "text": text,
                "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
            },
        }
    ).encode()


async def drive(api: BotApi, urls: list[str], inflight: int, seconds: float, text: str) -> dict[str, float]:
    """`urls`: the webhook of each bot process; senders spread over them as nginx would."""
    ids = itertools.count(int(time.time() * 1000) % 10**9 * 100)
    chats = itertools.cycle(range(10_000_000, 10_000_000 + USERS))
    latencies: list[float] = []
    errors = 0
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
    measuring = False
    deadline = 0.0

    async def one_sender(session: aiohttp.ClientSession, url: str) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            chat = next(chats)
            future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            api.waiting[chat] = future
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=update(next(ids), chat, text), headers=headers) as response:
                    body = await response.read()
                    if response.status != 200:
                        errors += 1
                    elif body.startswith(b'{"method": "sendMessage"'):  # answered in the response
                        api.waiting.pop(chat, None)
                        future.set_result(time.perf_counter())
                done = await asyncio.wait_for(future, 10)
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
                api.waiting.pop(chat, None)
                continue
            if measuring:
                latencies.append(done - t0)

    connector = aiohttp.TCPConnector(limit=inflight * 2)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=15)) as session:
        deadline = time.perf_counter() + 1.0  # warm-up
        await asyncio.gather(*(one_sender(session, urls[i % len(urls)]) for i in range(inflight)))
        measuring = True
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(*(one_sender(session, urls[i % len(urls)]) for i in range(inflight)))
        elapsed = time.perf_counter() - start
    ordered = sorted(latencies) or [0.0]
    return {
        "per_s": len(latencies) / elapsed,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
        "errors": errors,
    }


def hits_env(redis_url: str, broker_url: str, api_url: str, port: int, log_level: str) -> dict[str, str]:
    """Our bot in webhook mode on `port`, talking to the emulated Bot API at `api_url`, with
    limits that never bite: the bench measures the hit path."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": broker_url,
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": api_url,
        "TELEGRAM_MODE": "webhook",
        "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/webhook",
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "RATE_LIMIT": "1000000/second",
        "RATE_LIMIT_BURST": "10000",
        # The emulated Bot API has no limits: lift the bot's outbound budget (Telegram's
        # 30/s) so the bench measures the hit path, not the budget.
        "TELEGRAM_GLOBAL_RATE": "1000000/second",
        "TELEGRAM_CHAT_RATE": "1000000/second",
        "LOG_LEVEL": log_level,
    }


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("process exited at start")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)  # poll until the server answers
    raise RuntimeError(f"{url} did not become healthy")


async def run(seconds: float, inflights: list[int], processes: int) -> None:
    server = RedisServer().start()
    api = BotApi()
    api_runner = await api.start()
    api_url = f"http://127.0.0.1:{api.port}"
    redis_url = f"{server.url}/0"
    seed_hit(redis_url)
    results: dict[tuple[str, int], dict[str, float]] = {}
    # (name, command, one environment per process): several processes are what
    # `docker compose --scale bot=N` puts behind nginx, the load spread over them.
    variants: list[tuple[str, list[str], list[dict[str, str]]]] = []
    ours_env = hits_env(redis_url, redis_url, api_url, free_port(), log_level="WARNING")
    variants.append(("our bot (cache hits)", [sys.executable, "-m", "bot"], [ours_env]))
    posting_env = {**ours_env, "TELEGRAM_WEBHOOK_REPLIES": "off"}
    variants.append(("ours, replies POSTed", [sys.executable, "-m", "bot"], [posting_env]))
    if processes > 1:
        envs = [hits_env(redis_url, redis_url, api_url, free_port(), "WARNING") for _ in range(processes)]
        variants.append((f"ours, {processes} processes", [sys.executable, "-m", "bot"], envs))
    for transport in ("default", "aiohttp"):
        echo_port = free_port()
        args = [
            sys.executable,
            str(ROOT / "bench" / "echo_bot.py"),
            "--api",
            api_url,
            "--port",
            str(echo_port),
        ]
        echo = [*args, "--transport", transport]
        variants.append((f"PTB echo, {transport} transport", echo, [{"PORT": str(echo_port)}]))
    rss: dict[str, float] = {}
    try:
        for name, argv, envs in variants:
            if os.environ.get("BENCH_ONLY") and os.environ["BENCH_ONLY"] not in name:
                continue
            started = [
                subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdin=subprocess.DEVNULL)
                for env in envs
            ]
            pids = [process.pid for process in started]
            if os.environ.get("BENCH_PROFILE"):
                profile = ["py-spy", "record", "-o", os.environ["BENCH_PROFILE"], "-d", "4", "-f", "raw"]
                profile += ["-r", "500"]  # samples per second: enough to see a 1% frame
                subprocess.Popen(["sh", "-c", f"sleep 3; exec {' '.join(profile)} -p {pids[0]}"])
            try:
                urls = [f"http://127.0.0.1:{env.get('PORT', env.get('HTTP_PORT'))}" for env in envs]
                for url, process in zip(urls, started, strict=True):
                    await wait_healthy(url, process)
                for inflight in inflights:
                    cpu_before, wall_before = sum(map(cpu_seconds, pids)), time.perf_counter()
                    hooks = [f"{url}/telegram/webhook" for url in urls]
                    result = await drive(api, hooks, inflight, seconds, "/fx 1 EUR USD")
                    wall = time.perf_counter() - wall_before
                    result["cpu"] = (sum(map(cpu_seconds, pids)) - cpu_before) / wall
                    result["cpu_ms_per_msg"] = result["cpu"] * 1000 / max(result["per_s"], 1)
                    results[(name, inflight)] = result
                rss[name] = sum(map(rss_mb, pids))
            finally:
                for process in started:
                    process.terminate()
                for process in started:
                    process.wait(15)
    finally:
        await api_runner.cleanup()
        server.stop()

    print(f"Telegram webhook hit path, {seconds:g} s per run after 1 s warm-up, {os.cpu_count()} cores")
    print(
        f"{'bot':<30} {'in flight':>9} {'msgs/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        f" {'CPU %':>6} {'CPU ms/msg':>10} {'RSS MB':>7}"
    )
    for (name, inflight), r in results.items():
        print(
            f"{name:<30} {inflight:>9} {r['per_s']:>8,.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}"
            f" {r['errors']:>7.0f} {r['cpu'] * 100:>6.0f} {r['cpu_ms_per_msg']:>10.2f} {rss[name]:>7.0f}"
        )
    for inflight in inflights:
        if not all((name, inflight) in results for name, _, _ in variants):
            break
        ours = results[("our bot (cache hits)", inflight)]["per_s"]
        default = results[("PTB echo, default transport", inflight)]["per_s"]
        same = results[("PTB echo, aiohttp transport", inflight)]["per_s"]
        posting = results[("ours, replies POSTed", inflight)]["per_s"]
        print(
            f"{inflight} in flight: ours / default-transport echo = {ours / default:.2f}×; "
            f"ours / aiohttp-transport echo = {ours / same:.2f}× "
            f"(with replies POSTed: {posting / default:.2f}×, {posting / same:.2f}×)"
        )
        if processes > 1:
            several = results[(f"ours, {processes} processes", inflight)]["per_s"]
            print(f"{inflight} in flight: {processes} processes / one = {several / ours:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--inflight", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--processes", type=int, default=2, help="also ours as N processes (1: not)")
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.inflight, args.processes))


if __name__ == "__main__":
    main()
