"""Memory of a Celery worker's pool process after it has answered on every platform.

    .venv/bin/python bench/worker_memory.py [--concurrency 2]

Starts a private redis-server, the upstream, Telegram and Discord emulators from `tests/`,
and a real `celery -A tasks worker` (prefork). Queues one /fx lookup for Telegram, one for
Discord and one for the console by task name (the wire format only, so it measures any
version of the code), waits until each reply has arrived, then prints the resident memory
(VmRSS) of the main process and of each pool process, and which modules a pool process
holds (read from a fresh process that imports what a pool process imports).
Prints figures; never fails on a number.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from celery import Celery  # noqa: E402

from tests.emulators.discord import DiscordEmulator  # noqa: E402
from tests.emulators.telegram import TelegramEmulator  # noqa: E402
from tests.emulators.upstreams import Upstreams  # noqa: E402

try:  # the dev launcher's private redis-server, wherever this version keeps it
    from dev.redis_server import RedisServer  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - the layout before the redesign
    from bot.devstack import RedisServer  # type: ignore[import-not-found,no-redef,unused-ignore]

TELEGRAM_TOKEN = "7000001:AAH-bench-token_0123456789abcdefghij"
DISCORD_TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAx.discord-bench.token_0123456789"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in found.read_text().split()] if found.exists() else []


def request(platform: str, n: int, meta: Any) -> dict[str, object]:
    return {
        "platform": platform,
        "chat": str(4242 + n) if platform != "console" else "bench",  # one chat each: no per-chat pacing
        "user": "7",
        "request_id": f"{platform}:bench-{n}-{uuid.uuid4().hex[:6]}",
        "command": "fx",
        "args": f"{n} EUR USD",
        "meta": meta,
        "received_at": time.time(),
    }


def wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)  # polling an emulator's record from outside
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()

    server = RedisServer().start()
    upstreams = Upstreams().start()
    telegram = TelegramEmulator(TELEGRAM_TOKEN).start()
    discord = DiscordEmulator(DISCORD_TOKEN).start()
    env = {
        **os.environ,
        "REDIS_URL": f"{server.url}/0",
        "CELERY_BROKER_URL": f"{server.url}/1",
        "CELERY_QUEUE": "bench",
        "FX_API_URL": upstreams.url("fx"),
        "TELEGRAM_TOKEN": TELEGRAM_TOKEN,
        "TELEGRAM_API_URL": telegram.url,
        "DISCORD_TOKEN": DISCORD_TOKEN,
        "DISCORD_API_URL": discord.api_url,
        "DISCORD_GATEWAY_URL": discord.gateway_url,
        "LOG_LEVEL": "INFO",  # the worker says "ready." at INFO
    }
    log = Path(tempfile.mkstemp(prefix="bench-worker-", suffix=".log")[1])
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-l", "INFO", "-c", str(args.concurrency),
         "-n", f"bench-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait(lambda: b"ready." in log.read_bytes() or worker.poll() is not None, 60, "the worker")
        idle = {pid: rss_kib(pid) for pid in [worker.pid, *children(worker.pid)]}
        app = Celery("bench", broker=env["CELERY_BROKER_URL"])
        app.conf.task_default_queue = "bench"
        client = redis.Redis.from_url(env["REDIS_URL"])
        # Enough requests of each platform that every pool process serves each platform.
        rounds = 4 * args.concurrency
        for n in range(1, rounds + 1):
            for platform, meta in (
                ("telegram", {"chat_type": "private", "message_id": n}),
                ("discord", {"kind": "message", "message_id": str(n)}),
                ("console", {}),
            ):
                app.send_task("lookup", args=[request(platform, n, meta), {"amount": str(n), "from": "EUR",
                                                                          "to": "USD"}])  # fmt: skip
        wait(lambda: len(telegram.messages()) >= rounds, 60, "the Telegram replies")
        wait(lambda: len(discord.of_kind("channel_message")) >= rounds, 60, "the Discord replies")
        wait(lambda: client.llen("console:replies:bench") >= rounds, 60, "the console replies")
        busy = {pid: rss_kib(pid) for pid in [worker.pid, *children(worker.pid)]}
        print(f"worker main process {worker.pid}: {idle.get(worker.pid, 0) / 1024:.1f} MiB idle, "
              f"{busy[worker.pid] / 1024:.1f} MiB after the replies")  # fmt: skip
        pool = [pid for pid in busy if pid != worker.pid]
        for pid in pool:
            print(f"pool process {pid}: {idle.get(pid, 0) / 1024:.1f} MiB idle, "
                  f"{busy[pid] / 1024:.1f} MiB after answering on telegram, discord and console")  # fmt: skip
        if pool:
            print(f"pool process mean: {sum(busy[p] for p in pool) / len(pool) / 1024:.1f} MiB")
        probe = (
            "import sys, tasks\n"
            "from tasks import app\n"
            "for name in ('telegram', 'discord', 'console'):\n"
            "    try:\n"
            "        from bot.platforms import sender_for\n"
            "    except ImportError:\n"
            "        from bot.senders import sender_for\n"
            "    sender_for(name)\n"
            "held = [m for m in ('telegram', 'discord', 'aiohttp', 'telegram.ext') if m in sys.modules]\n"
            "print(' '.join(held) or 'none')\n"
        )
        held = subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        print(f"chat SDKs imported by a pool process' code: {held.stdout.strip() or held.stderr[-300:]}")
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(30)
        discord.stop()
        telegram.stop()
        upstreams.stop()
        server.stop()


if __name__ == "__main__":
    main()
