"""A flood against the bot on Telegram (webhook mode): what it costs and whom it hurts.

    .venv/bin/python bench/flood.py [--seconds 30] [--flooders 100] [--rate 10] [--calm 10]
                                    [--compare OTHER_CHECKOUT]

`--flooders` users each send /ping `--rate` times a second while `--calm` users send one /ping
every 3 s (inside the default 20/minute). The bot (`python -m bot`) and one Celery worker run
with their default settings against a private redis-server and an emulated Bot API that
enforces Telegram's limits the way the real one does (429 with retry_after past ~30 messages/s
per bot or a short burst per chat). Prints, per checkout: messages sent to flooders per flood
message, 429s, and the calm users' reply latency. `--compare DIR` runs the same load against
another checkout of this repository (e.g. a worktree of an older commit) in the same run.
Prints figures; never fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from telegram_hits import BotApi, update, wait_healthy  # noqa: E402  (bench/ is the script's own folder)

from dev.redis_server import RedisServer, free_port  # noqa: E402

TOKEN = "1:flood"
SECRET = "flood-secret-0123456789"
PER_BOT = (35.0, 35)  # the emulated API's limits: a little above the bot's own 30/s …
PER_CHAT = (1.0, 5)  # … and ~1/s per chat, short bursts tolerated


class LimitedBotApi(BotApi):
    """The hit bench's Bot API, enforcing per-bot and per-chat limits with 429s and recording
    every message sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: dict[int, list[float]] = defaultdict(list)
        self.too_many = 0
        self._tat: dict[Any, float] = {}

    def _allowed(self, key: Any, rate: float, burst: int, now: float) -> bool:
        interval = 1 / rate
        tat = max(self._tat.get(key, now), now)
        if tat + interval - burst * interval > now:
            return False
        self._tat[key] = tat + interval
        return True

    async def dispatch(self, request: web.Request) -> web.Response:
        if request.match_info["method"] != "sendMessage":
            return await super().dispatch(request)
        form = await request.post()
        chat = int(str(form["chat_id"]))
        now = time.monotonic()
        if not (self._allowed("bot", *PER_BOT, now) and self._allowed(chat, *PER_CHAT, now)):
            self.too_many += 1
            body = {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
                    "parameters": {"retry_after": 1}}  # fmt: skip
            return web.json_response(body, status=429)
        self.sent[chat].append(time.perf_counter())
        result = {"message_id": 1, "date": int(time.time()), "chat": {"id": chat, "type": "private"}}
        return web.json_response({"ok": True, "result": result})


async def load(api: LimitedBotApi, url: str, args: argparse.Namespace) -> dict[str, float]:
    ids = itertools.count(int(time.time() * 1000) % 10**9 * 100)
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
    flooders = [20_000_000 + n for n in range(args.flooders)]
    calm = [30_000_000 + n for n in range(args.calm)]
    flood_sent = 0
    asked: dict[int, list[float]] = defaultdict(list)
    deadline = time.perf_counter() + args.seconds

    pending: set[asyncio.Task[None]] = set()

    async def post(session: aiohttp.ClientSession, chat: int) -> None:
        try:
            async with session.post(url, data=update(next(ids), chat, "/ping"), headers=headers) as response:
                await response.read()
        except (aiohttp.ClientError, TimeoutError):
            pass  # a refused update counts as sent: the flood does not wait for the bot

    def send(session: aiohttp.ClientSession, chat: int) -> None:
        task = asyncio.create_task(post(session, chat))
        pending.add(task)
        task.add_done_callback(pending.discard)

    async def flooder(session: aiohttp.ClientSession, chat: int) -> None:
        nonlocal flood_sent
        while time.perf_counter() < deadline:
            send(session, chat)
            flood_sent += 1
            await asyncio.sleep(1 / args.rate)  # the flooder's pace

    async def calm_user(session: aiohttp.ClientSession, chat: int) -> None:
        await asyncio.sleep(chat % 30 / 10)  # spread the calm users over the first 3 s
        while time.perf_counter() < deadline:
            send(session, chat)
            asked[chat].append(time.perf_counter())
            await asyncio.sleep(3.0)  # a calm user's pace: inside 20/minute

    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(*(flooder(session, c) for c in flooders), *(calm_user(session, c) for c in calm))
        await asyncio.gather(*pending)
    await asyncio.sleep(5)  # replies handed to the worker arrive paced: give them time before counting
    latencies = []
    for chat in calm:
        answers = api.sent.get(chat, [])
        latencies += [answer - ask for ask, answer in zip(asked[chat], answers, strict=False)]
    latencies.sort()
    to_flooders = sum(len(api.sent.get(c, [])) for c in flooders)
    answered = sum(min(len(asked[c]), len(api.sent.get(c, []))) for c in calm)
    return {
        "flood_in": flood_sent,
        "flood_out": to_flooders,
        "per_flood_msg": to_flooders / max(1, flood_sent),
        "too_many": api.too_many,
        "calm_asked": sum(len(v) for v in asked.values()),
        "calm_answered": answered,
        "calm_p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else float("nan"),
        "calm_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        if latencies
        else float("nan"),
    }


async def run_one(root: Path, args: argparse.Namespace) -> dict[str, float]:
    server = RedisServer().start()
    api = LimitedBotApi()
    runner = await api.start()
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": f"{server.url}/0",
        "CELERY_BROKER_URL": f"{server.url}/1",
        "CELERY_QUEUE": f"flood-{uuid.uuid4().hex[:6]}",
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": f"http://127.0.0.1:{api.port}",
        "TELEGRAM_MODE": "webhook",
        "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/webhook",
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "WORKER_METRICS_PORT": "0",
    }
    name = f"flood-{uuid.uuid4().hex[:6]}@%h"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-c", "4", "-n", name,
         "--without-gossip", "--without-mingle"],
        cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    bot = subprocess.Popen([sys.executable, "-m", "bot"], cwd=root, env=env, stdin=subprocess.DEVNULL)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", bot)
        return await load(api, f"http://127.0.0.1:{port}/telegram/webhook", args)
    finally:
        bot.terminate()
        bot.wait(15)
        os.killpg(worker.pid, 15)
        worker.wait(30)
        await runner.cleanup()
        server.stop()


async def run(args: argparse.Namespace) -> None:
    checkouts = [("this checkout", ROOT)] + (
        [("compared", Path(args.compare).resolve())] if args.compare else []
    )
    results = [(name, await run_one(root, args)) for name, root in checkouts]
    print(
        f"Flood on Telegram (webhook): {args.flooders} users × {args.rate:g} /ping a second for "
        f"{args.seconds:g} s, {args.calm} calm users (one /ping per 3 s), default settings, "
        f"{os.cpu_count()} cores"
    )
    print(
        f"{'checkout':<16} {'flood in':>9} {'to flooders':>12} {'out per flood msg':>18} {'429s':>6}"
        f" {'calm answered':>14} {'calm p50 ms':>12} {'calm p99 ms':>12}"
    )
    for name, r in results:
        print(
            f"{name:<16} {r['flood_in']:>9,.0f} {r['flood_out']:>12,.0f} {r['per_flood_msg']:>18.3f}"
            f" {r['too_many']:>6,.0f} {r['calm_answered']:>6,.0f}/{r['calm_asked']:<7,.0f}"
            f" {r['calm_p50_ms']:>12.1f} {r['calm_p99_ms']:>12.1f}"
        )
    if len(results) == 2:
        ours, other = results[0][1], results[1][1]
        outbound = ours["per_flood_msg"] / max(other["per_flood_msg"], 1e-9)
        p99 = ours["calm_p99_ms"] / max(other["calm_p99_ms"], 1e-9)
        print(f"ratio this/compared: outbound per flood message {outbound:.3f}×, calm p99 {p99:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--flooders", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--calm", type=int, default=10)
    parser.add_argument(
        "--compare", default="", help="another checkout of this repository to run the same load on"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
