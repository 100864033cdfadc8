"""Coalescing benchmark: N concurrent identical misses and M distinct ones, with and without.

    .venv/bin/python bench/coalesce.py [--identical 200] [--distinct 50] [--latency 0.5]

Starts a private redis-server, the emulated upstreams with a fixed latency, and one real
Celery worker (prefork, --concurrency), then fires all requests at once through the real
pipeline (console platform) and collects every reply from Redis. Prints upstream calls,
replies, and reply latency percentiles, with coalescing on and off. Never fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from dev.redis_server import RedisServer, wait_for_redis  # noqa: E402
from tests.emulators.upstreams import Upstreams  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def start_worker(env: dict[str, str], concurrency: int) -> tuple[subprocess.Popen[bytes], Path]:
    log = Path(tempfile.mkstemp(prefix="bench-worker-", suffix=".log")[1])
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-l", "INFO", "-c", str(concurrency),
             "--without-gossip", "--without-mingle", "-n", f"bench-{os.getpid()}@%h"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return process, log


async def run_once(env: dict[str, str], identical: int, distinct: int) -> dict[str, float]:
    # Settings are read from the environment: import after it is set.
    for key, value in env.items():
        os.environ[key] = value
    from bot.core.request import Request
    from bot.main import make_redis
    from bot.pipeline import Pipeline
    from config import Settings
    from tasks.enqueue import CeleryQueue

    settings = Settings()
    client = make_redis(settings)
    pipeline = Pipeline(settings, client, CeleryQueue(settings))
    session = f"bench-{time.time_ns()}"
    requests_ = [Request("console", session, f"u{n}", f"console:{session}-{n}", "wiki", "Alan Turing")
                 for n in range(identical)]  # fmt: skip
    requests_ += [Request("console", session, f"d{n}", f"console:{session}-d{n}", "fx", f"{n + 1} EUR USD")
                  for n in range(distinct)]  # fmt: skip
    sent_at = {}
    for r in requests_:
        sent_at[r.request_id] = time.perf_counter()
    await asyncio.gather(*(pipeline.handle(r) for r in requests_))
    listener = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=10)
    latencies: list[float] = []
    seen: set[str] = set()
    duplicates = 0
    deadline = time.monotonic() + 300
    while len(seen) < len(requests_) and time.monotonic() < deadline:
        item = await asyncio.to_thread(listener.blpop, [f"console:replies:{session}"], 5)
        if not item:
            continue
        payload = json.loads(item[1])
        if payload["request_id"] in seen:
            duplicates += 1
            continue
        seen.add(payload["request_id"])
        latencies.append(time.perf_counter() - sent_at[payload["request_id"]])
    listener.close()
    await client.aclose()
    return {
        "replies": len(seen),
        "lost": len(requests_) - len(seen),
        "duplicates": duplicates,
        "p50": percentile(latencies, 0.5),
        "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies or [0.0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identical", type=int, default=200)
    parser.add_argument("--distinct", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.5, help="upstream latency, seconds")
    parser.add_argument("--concurrency", type=int, default=8, help="worker processes")
    args = parser.parse_args()

    server = RedisServer().start()
    upstreams = Upstreams().start()
    rows = []
    try:
        for coalesce in (True, False):
            redis.Redis.from_url(f"{server.url}/0").flushall()
            upstreams.reset()
            upstreams.latency["wiki"] = upstreams.latency["fx"] = args.latency
            env = {
                **os.environ,
                "REDIS_URL": f"{server.url}/0",
                "CELERY_BROKER_URL": f"{server.url}/1",
                "FX_API_URL": upstreams.url("fx"),
                "WIKI_API_URL": upstreams.url("wiki"),
                "COALESCE": "true" if coalesce else "false",
                "RATE_LIMIT": "1000/second",
                "UPSTREAM_READ_TIMEOUT": str(args.latency + 5),
                "LOG_LEVEL": "WARNING",
            }
            worker, log = start_worker(env, args.concurrency)
            try:
                assert wait_for_redis(env["REDIS_URL"], 5)
                deadline = time.monotonic() + 60
                while b"ready" not in log.read_bytes() and time.monotonic() < deadline:
                    time.sleep(0.1)  # poll the worker's log until it is ready
                started = time.perf_counter()
                result = asyncio.run(run_once(env, args.identical, args.distinct))
                result["wall"] = time.perf_counter() - started
                result["calls"] = upstreams.count("wiki") + upstreams.count("fx")
                rows.append(("on" if coalesce else "off", result))
            finally:
                worker.terminate()
                worker.wait(30)
    finally:
        upstreams.stop()
        server.stop()

    total = args.identical + args.distinct
    print(
        f"coalescing benchmark: {args.identical} identical + {args.distinct} distinct misses at once, "
        f"upstream latency {args.latency:g} s, {args.concurrency} worker processes, {os.cpu_count()} cores"
    )
    print(f"{'coalescing':<11} {'upstream calls':>14} {'replies':>8} {'lost':>5} {'dups':>5} "
          f"{'p50 s':>7} {'p95 s':>7} {'p99 s':>7} {'all done s':>10}")  # fmt: skip
    for name, r in rows:
        print(
            f"{name:<11} {r['calls']:>14.0f} {r['replies']:>8.0f} {r['lost']:>5.0f} {r['duplicates']:>5.0f} "
            f"{r['p50']:>7.2f} {r['p95']:>7.2f} {r['p99']:>7.2f} {r['wall']:>10.2f}"
        )
    on, off = rows[0][1], rows[1][1]
    print(
        f"{total} requests: coalescing cuts upstream calls {off['calls'] / max(on['calls'], 1):.1f}× "
        f"and p95 reply latency {off['p95'] / max(on['p95'], 1e-9):.1f}×"
    )


if __name__ == "__main__":
    main()
