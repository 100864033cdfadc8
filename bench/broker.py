"""Benchmark the broker hop on both brokers: a task's round trip (publish → a worker runs it →
its result read back) one after another, and how many a second go through a worker when many
are queued at once — on Redis (a private redis-server) and on RabbitMQ (its quorum queue, if
one answers at --amqp).

    .venv/bin/python bench/broker.py [--requests 300] [--burst 2000] [--amqp amqp://guest:guest@localhost:5672//]

The task is Celery's built-in `celery.accumulate` (returns its argument): what is measured is
the broker, the worker's consume/ack and the result backend (Redis), not our code. Prints
figures; never fails on a number.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fanout import start_worker  # noqa: E402  (bench/, the script's folder)

from dev.redis_server import RedisServer  # noqa: E402


def measure(broker: str, redis_url: str, requests: int, burst: int) -> str:
    env = {
        **os.environ,
        "REDIS_URL": f"{redis_url}/0",
        "CELERY_BROKER_URL": broker,
        "CELERY_QUEUE": f"broker-bench-{time.time_ns()}",
        "WORKER_METRICS_PORT": "0",
        "SENTRY_DSN": "",
        "LOG_LEVEL": "WARNING",
    }
    log = open(tempfile.mkstemp(prefix="broker-bench-", suffix=".log")[1], "ab")  # noqa: SIM115
    worker = start_worker(env, "bench", 16, log)
    # This process publishes as the bot does: the same Celery app, configured by the same env.
    code = f"""
import time
from tasks.app import app
while not app.control.ping(timeout=1):
    pass
for n in range(20):  # warm-up: connections, queue declared
    app.send_task("celery.accumulate", args=(n,), ignore_result=False).get(timeout=30)
took = []
for n in range({requests}):
    started = time.perf_counter()
    assert app.send_task("celery.accumulate", args=(n,), ignore_result=False).get(timeout=30) == [n]
    took.append(time.perf_counter() - started)
took.sort()
started = time.perf_counter()
results = [app.send_task("celery.accumulate", args=(n,), ignore_result=False) for n in range({burst})]
published = time.perf_counter() - started
for result in results:
    result.get(timeout=120)
burst = time.perf_counter() - started
q = lambda p: took[min(len(took) - 1, int(p * len(took)))] * 1000
print(f"p50 {{q(0.5):.2f}} ms, p95 {{q(0.95):.2f}} ms, p99 {{q(0.99):.2f}} ms; "
      f"{burst} at once: published in {{published:.2f}} s, all run in {{burst:.2f}} s "
      f"({{{burst} / burst:,.0f}} tasks/s)")
"""
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        return done.stdout.strip() or done.stderr.strip()[-500:]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--amqp", default="amqp://guest:guest@localhost:5672//")
    args = parser.parse_args()
    server = RedisServer().start()
    try:
        print(f"task round trip, {args.requests} one after another; then {args.burst} queued at once")
        print(f"{'Redis':10} {measure(f'{server.url}/1', server.url, args.requests, args.burst)}")
        print(f"{'RabbitMQ':10} {measure(args.amqp, server.url, args.requests, args.burst)}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
