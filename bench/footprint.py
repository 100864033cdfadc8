"""Benchmark what one message costs Redis and the broker, for the capacity model
(docs/scaling.md): commands per hit and per miss on the app Redis, bytes a message leaves for
DEDUPE_TTL and bytes per user, and broker commands and messages per miss — through the real
pipeline (gate, cache, Celery queue) and a real worker, app Redis and broker Redis on two
private redis-servers, so that each one's INFO commandstats counts only its own work.

    .venv/bin/python bench/footprint.py [--messages 2000]

Prints figures; never fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from fanout import start_worker  # noqa: E402  (bench/, the script's folder)

from dev.redis_server import RedisServer  # noqa: E402
from tests.emulators.upstreams import Upstreams  # noqa: E402


def calls(client: redis.Redis) -> dict[str, int]:
    return {name: int(stat["calls"]) for name, stat in client.info("commandstats").items()}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    changed = {name: after[name] - before.get(name, 0) for name in after}
    return {name: n for name, n in changed.items() if n and name not in ("cmdstat_info",)}


def used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    n = args.messages
    app_server, broker_server = RedisServer().start(), RedisServer().start()
    upstreams = Upstreams().start()
    env = {
        **os.environ,
        "REDIS_URL": f"{app_server.url}/0",
        "CELERY_BROKER_URL": f"{broker_server.url}/0",
        "CELERY_QUEUE": "footprint",
        "FX_API_URL": upstreams.url("fx"),
        "RATE_LIMIT": "600/minute",
        "WORKER_METRICS_PORT": "0",
        "SENTRY_DSN": "",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    log = open(tempfile.mkstemp(prefix="footprint-", suffix=".log")[1], "ab")  # noqa: SIM115
    worker = start_worker(env, "footprint", 32, log)
    app, broker = redis.Redis.from_url(env["REDIS_URL"]), redis.Redis.from_url(env["CELERY_BROKER_URL"])
    try:
        from tasks.app import app as celery_app

        while not celery_app.control.ping(timeout=1):
            pass
        asyncio.run(run(n, app, broker))
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
        upstreams.stop()
        app_server.stop()
        broker_server.stop()


async def run(n: int, app: redis.Redis, broker: redis.Redis) -> None:
    from bot.core import keys
    from bot.core.request import Request
    from bot.main import make_redis, warm_redis
    from bot.pipeline import Pipeline
    from config import get_settings
    from tasks.enqueue import CeleryQueue

    settings = get_settings()
    client = make_redis(settings)
    await warm_redis(client)
    pipeline = Pipeline(settings, client, CeleryQueue(settings))
    ids = iter(range(10**9))

    async def send(user: str, text: str) -> Any:
        command, _, rest = text.lstrip("/").partition(" ")
        request = Request("console", f"chat-{user}", user, f"console:fp-{next(ids)}", command, rest)
        return await pipeline.handle(request)

    await send("warm", "/fx 1 EUR USD")  # the answer every hit below reads
    while not app.keys("cache:fx:*"):
        await asyncio.sleep(0.05)  # the lookup lands in the worker; poll for it
    await asyncio.sleep(0.5)  # its done-mark and stats settle

    def snapshot() -> tuple[dict[str, int], dict[str, int], int]:
        return calls(app), calls(broker), used(app)

    report: list[str] = []
    # Hits by users the bot has not seen, then by the same users again: the first costs the
    # user's keys and the message's, the second the message's alone.
    for label in ("hit, new user", "hit, known user"):
        app_before, broker_before, memory_before = snapshot()
        for user in range(n):
            await send(f"u{user}", "/fx 1 EUR USD")
        await pipeline.gate.flush()
        app_after, broker_after, memory_after = snapshot()
        commands = sum(delta(app_before, app_after).values()) / n
        report.append(
            f"{label:18} app Redis {commands:5.2f} commands/msg, {(memory_after - memory_before) / n:6.0f} "
            f"bytes/msg kept; broker {sum(delta(broker_before, broker_after).values()) / n:5.2f} commands/msg"
        )
    # Misses: distinct lookups by known users; everything until every reply is out.
    app_before, broker_before, _ = snapshot()
    started = time.monotonic()
    for user in range(n):
        await send(f"u{user}", f"/fx {2 + user} EUR USD")
    await pipeline.gate.flush()
    while len(app.keys("cache:fx:*")) < n + 1 and time.monotonic() - started < 300:
        await asyncio.sleep(0.2)  # the worker is answering; poll until every lookup landed
    await asyncio.sleep(1)  # the last replies and their marks
    app_after, broker_after, _ = snapshot()
    broker_calls = delta(broker_before, broker_after)
    published = broker_calls.get("cmdstat_lpush", 0) + broker_calls.get("cmdstat_rpush", 0)
    report.append(
        f"{'miss':18} app Redis {sum(delta(app_before, app_after).values()) / n:5.2f} commands/msg "
        f"(bot and worker); broker {sum(broker_calls.values()) / n:5.2f} commands/msg, "
        f"{published / n:4.2f} messages published/msg"
    )
    top = sorted(delta(app_before, app_after).items(), key=lambda kv: -kv[1])[:8]
    report.append("  app Redis commands per miss: " + ", ".join(f"{k[8:]} {v / n:.2f}" for k, v in top))
    top = sorted(broker_calls.items(), key=lambda kv: -kv[1])[:8]
    report.append("  broker commands per miss: " + ", ".join(f"{k[8:]} {v / n:.2f}" for k, v in top))
    per_key = app.memory_usage(keys.seen("console:fp-1")) or 0
    kept = f"kept DEDUPE_TTL ({settings.DEDUPE_TTL} s)"
    report.append(f"a message's dedupe key: {per_key} bytes by MEMORY USAGE, {kept}")
    await pipeline.gate.close()
    await client.aclose()
    print(f"{n:,} messages of each kind")
    print("\n".join(report))


if __name__ == "__main__":
    main()
