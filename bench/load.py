"""Load benchmark: our stack against a bare python-telegram-bot bot, same load, side by side.

    .venv/bin/python bench/load.py [--users 40] [--seconds 45] [--fault-rate 0.05]
    .venv/bin/python bench/load.py --capacity 1200 --min-latency 1 --max-latency 1 [--workers 2]

Both bots run in Telegram webhook mode against the Bot API emulator; N simulated users each
send a request, wait for the answer, think 0.2-1 s, and go again, for the given time. The
queries follow a Zipf distribution over a catalogue of /fx and /wiki lookups; the emulated
upstreams answer in 0.3-3 s, failing with 503 at --fault-rate. Prints messages/s, reply
latency percentiles split by hit (the query was answered before) and miss, upstream calls
against requests, Redis commands per message, lost and duplicate replies, bot RSS, and the
ratios; and the upstream's own latency at p50, which a miss cannot beat (ours − that is
what queueing, the broker and the pipeline add).

--capacity N instead sends N distinct /fx misses at once (N chats, one each) to our stack
only and prints distinct lookups answered per second by its worker(s) (the default pool:
threads, WORKER_CONCURRENCY; --pool/--concurrency/--workers override), with lost and
duplicates, and the workers' CPU per lookup.
Prints figures; never fails on a number.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import requests  # noqa: E402

from dev.redis_server import RedisServer, free_port  # noqa: E402
from tests.emulators.telegram import TelegramEmulator  # noqa: E402
from tests.emulators.upstreams import Upstreams  # noqa: E402

TOKEN = "7000001:AAH-load-test-token_0123456789abcdef"
SECRET = "load-secret-0123456789"
TOPICS = ["Alan Turing", "AT&T", "Mercury", "Everyone"] + [f"Topic {n}" for n in range(46)]


def catalogue() -> list[str]:
    fx = [f"/fx {n} EUR USD" for n in range(1, 51)]
    wiki = [f"/wiki {t}" for t in TOPICS]
    mixed = [q for pair in zip(fx, wiki, strict=True) for q in pair]
    return mixed


def zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1 / (rank**s) for rank in range(1, n + 1)]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)  # poll until the server answers
    raise RuntimeError(f"{url} did not answer")


def drive(telegram: TelegramEmulator, users: int, seconds: float, rss_of: int) -> dict[str, Any]:
    queries = catalogue()
    weights = zipf_weights(len(queries))
    answered_before: set[str] = set()
    lock = threading.Lock()
    samples: list[tuple[str, float]] = []  # (hit|miss, latency)
    sent = lost = 0
    rss_peak = 0.0
    stop_at = time.monotonic() + seconds
    chat_ids = [90_000_000 + n for n in range(users)]

    def user(chat: int, seed: int) -> None:
        nonlocal sent, lost
        rng = random.Random(seed)
        while time.monotonic() < stop_at:
            query = rng.choices(queries, weights)[0]
            with lock:
                kind = "hit" if query in answered_before else "miss"
                sent += 1
            before = len(telegram.messages(chat))
            started = time.monotonic()
            telegram.push(telegram.message_update(chat, chat, query))
            if telegram.wait_for(functools.partial(_replied, telegram, chat, before), 30):
                with lock:
                    samples.append((kind, time.monotonic() - started))
                    answered_before.add(query)
            else:
                with lock:
                    lost += 1
            time.sleep(rng.uniform(0.2, 1.0))  # think time of a chat user

    threads = [threading.Thread(target=user, args=(c, n), daemon=True) for n, c in enumerate(chat_ids)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        rss_peak = max(rss_peak, rss_mb(rss_of))
        time.sleep(0.5)  # sampling the bot's memory while the load runs
    elapsed = time.monotonic() - started
    time.sleep(2)  # late duplicates would arrive now
    replies = sum(len(telegram.messages(c)) for c in chat_ids)
    answered = len(samples)
    return {
        "sent": sent,
        "answered": answered,
        "lost": lost,
        "duplicates": max(0, replies - answered),
        "per_s": answered / elapsed,
        "samples": samples,
        "rss": rss_peak,
    }


def _replied(telegram: TelegramEmulator, chat: int, before: int) -> bool:
    return len(telegram.messages(chat)) > before


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    q = statistics.quantiles(values, n=100)
    return f"{q[49] * 1000:7.0f} {q[94] * 1000:7.0f} {q[98] * 1000:7.0f}"


@contextlib.contextmanager
def bot_stack(
    variant: str,
    redis_url: str,
    upstreams: Upstreams,
    telegram: TelegramEmulator,
    concurrency: int | None = None,
    pool: str | None = None,
    worker_pid: list[int] | None = None,
    workers: int = 1,
) -> Iterator[int]:
    """Run "ours" (`workers` Celery workers and `python -m bot`) or "baseline" in webhook mode;
    yield the bot's pid once it answers and the webhook is registered (and put the workers'
    in `worker_pid`)."""
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": f"{redis_url}/0",
        "CELERY_BROKER_URL": f"{redis_url}/1",
        "FX_API_URL": upstreams.url("fx"),
        "WIKI_API_URL": upstreams.url("wiki"),
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": telegram.url,
        "TELEGRAM_MODE": "webhook",
        "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/webhook",
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_GLOBAL_RATE": "1000/second",
        "TELEGRAM_CHAT_RATE": "100/second",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "RATE_LIMIT": "600/minute",
        "LOOKUP_RETRY_BACKOFF": "0.2",
        "LOOKUP_RETRY_BACKOFF_MAX": "2",
        "LOG_LEVEL": "WARNING",
        "WORKER_METRICS_PORT": "0",
    }
    telegram.state.webhook_url = ""
    processes: list[subprocess.Popen[bytes]] = []
    log = open(tempfile.mkstemp(prefix=f"load-{variant}-", suffix=".log")[1], "ab")  # noqa: SIM115
    try:
        if variant == "ours":
            pool_args = (["-c", str(concurrency)] if concurrency else []) + (["-P", pool] if pool else [])
            for n in range(workers):
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-l", "WARNING", *pool_args,
                     "-n", f"w{n}@%h", "--without-gossip", "--without-mingle"],
                    cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True))  # fmt: skip
                if worker_pid is not None:
                    worker_pid.append(processes[-1].pid)
            bot = subprocess.Popen([sys.executable, "-m", "bot"], cwd=ROOT, env=env, stdout=log, stderr=log)
        else:
            bot = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "baseline_bot.py"), "--api", telegram.url,
                 "--token", TOKEN, "--port", str(port), "--fx", upstreams.url("fx"),
                 "--wiki", upstreams.url("wiki")],
                cwd=ROOT, env=env, stdout=log, stderr=log)  # fmt: skip
        processes.append(bot)
        wait_http(f"http://127.0.0.1:{port}/healthz")
        telegram.wait_for(lambda: bool(telegram.state.webhook_url), 20)
        time.sleep(2 if variant == "ours" else 0.5)  # let the worker pool come up
        yield bot.pid
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=45)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--min-latency", type=float, default=0.3)
    parser.add_argument("--max-latency", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, help="worker pool size (default: WORKER_CONCURRENCY)")
    parser.add_argument("--pool", choices=["prefork", "threads"], help="worker pool (default: WORKER_POOL)")
    parser.add_argument("--capacity", type=int, default=0, help="N distinct misses at once instead")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (--capacity)")
    args = parser.parse_args()
    if args.capacity:
        capacity(args)
        return

    server = RedisServer().start()
    upstreams = Upstreams().start()
    telegram = TelegramEmulator(TOKEN).start()
    results: dict[str, dict[str, Any]] = {}
    try:
        for variant in ("ours", "baseline"):
            redis.Redis.from_url(f"{server.url}/0").flushall()
            upstreams.reset()
            telegram.reset()
            for provider in ("fx", "wiki"):
                upstreams.latency_range[provider] = (args.min_latency, args.max_latency)
                upstreams.random_faults[provider] = (args.fault_rate, 0.0)
            with bot_stack(variant, server.url, upstreams, telegram, args.concurrency, args.pool) as pid:
                stats = redis.Redis.from_url(f"{server.url}/0")
                commands_before = int(stats.info("stats")["total_commands_processed"])
                result = drive(telegram, args.users, args.seconds, pid)
                result["redis_commands"] = (
                    int(stats.info("stats")["total_commands_processed"]) - commands_before
                )
                result["upstream_calls"] = upstreams.count("fx") + upstreams.count("wiki")
                result["upstream_latencies"] = upstreams.latencies["fx"] + upstreams.latencies["wiki"]
                results[variant] = result
    finally:
        telegram.stop()
        upstreams.stop()
        server.stop()

    span = f"{args.min_latency:g}-{args.max_latency:g} s"
    pool = f"{args.pool or 'default'} pool, concurrency {args.concurrency or 'default'}"
    print(
        f"load: {args.users} users for {args.seconds:g} s, Zipf mix over {len(catalogue())} lookups, "
        f"upstream {span} with {args.fault_rate:.0%} 503s, {os.cpu_count()} cores, worker: {pool}"
    )
    header = ("bot", "msgs/s", "sent", "lost", "dups", "upstream", "hit p50/p95/p99 ms",
              "miss p50/p95/p99 ms", "redis cmds/msg", "RSS MB")  # fmt: skip
    widths = (-9, 7, 6, 5, 5, 9, 24, 24, 15, 7)
    print(" ".join(f"{h:<{-w}}" if w < 0 else f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for name, r in results.items():
        hits = [t for k, t in r["samples"] if k == "hit"]
        misses = [t for k, t in r["samples"] if k == "miss"]
        row = (name, f"{r['per_s']:.1f}", r["sent"], r["lost"], r["duplicates"], r["upstream_calls"],
               percentiles(hits), percentiles(misses), f"{r['redis_commands'] / max(r['sent'], 1):.1f}",
               f"{r['rss']:.0f}")  # fmt: skip
        print(" ".join(f"{v!s:<{-w}}" if w < 0 else f"{v!s:>{w}}" for v, w in zip(row, widths, strict=True)))
    for name, r in results.items():
        upstream_p50 = statistics.median(r["upstream_latencies"] or [0.0])
        misses = [t for k, t in r["samples"] if k == "miss"]
        if misses:
            print(
                f"{name}: upstream's own latency p50 {upstream_p50 * 1000:.0f} ms; "
                f"miss p50 − that = {(statistics.median(misses) - upstream_p50) * 1000:+.0f} ms"
            )
    ours, base = results["ours"], results["baseline"]
    all_ours = [t for _, t in ours["samples"]]
    all_base = [t for _, t in base["samples"]]
    if len(all_ours) > 1 and len(all_base) > 1:
        calls = ours["upstream_calls"] / max(ours["sent"], 1), base["upstream_calls"] / max(base["sent"], 1)
        print(
            f"ours vs baseline: {ours['per_s'] / max(base['per_s'], 1e-9):.1f}× messages/s; reply p50 "
            f"{statistics.median(all_base) / statistics.median(all_ours):.0f}× lower; "
            f"upstream calls per request {calls[0]:.2f} vs {calls[1]:.2f}"
        )


def group_cpu_seconds(pgid: int) -> float:
    """CPU time of every process in a process group (a worker and its prefork children)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def capacity(args: argparse.Namespace) -> None:
    """N distinct misses at once: how many lookups per second one worker answers."""
    server = RedisServer().start()
    upstreams = Upstreams().start()
    telegram = TelegramEmulator(TOKEN).start()
    n = args.capacity
    chats = [80_000_000 + i for i in range(n)]
    try:
        upstreams.latency_range["fx"] = (args.min_latency, args.max_latency)
        worker: list[int] = []
        with bot_stack(
            "ours", server.url, upstreams, telegram, args.concurrency, args.pool, worker, args.workers
        ):
            telegram.reset()
            cpu_before = sum(map(group_cpu_seconds, worker))
            started = time.monotonic()
            for i, chat in enumerate(chats):
                telegram.push(telegram.message_update(chat, chat, f"/fx {1000 + i} EUR USD"))
            wanted = set(chats)

            def all_answered() -> bool:  # one pass over what was sent (per chat would be n²)
                return wanted <= {m.chat_id for m in telegram.messages()}

            done = False
            while not done and time.monotonic() - started < 120:
                done = telegram.wait_for(all_answered, 2)
                print(
                    f"  {time.monotonic() - started:5.1f} s: {len(telegram.webhook_statuses)} updates taken, "
                    f"{upstreams.count('fx')} upstream calls, {len(telegram.messages())} answers",
                    file=sys.stderr,
                )
            elapsed = time.monotonic() - started
            worker_cpu = sum(map(group_cpu_seconds, worker)) - cpu_before
            worker_rss = rss_mb(worker[0])
            time.sleep(2)  # late duplicates would arrive now
            per_chat = collections.Counter(m.chat_id for m in telegram.messages())
            replies = [per_chat[c] for c in chats]
    finally:
        telegram.stop()
        upstreams.stop()
        server.stop()
    answered = sum(1 for r in replies if r)
    pool = f"{args.pool or 'default'} pool, concurrency {args.concurrency or 'default'}"
    print(
        f"capacity: {n} distinct /fx misses at once, upstream {args.min_latency:g}-{args.max_latency:g} s, "
        f"{args.workers} worker process(es) ({pool}), {os.cpu_count()} cores"
    )
    print(
        f"answered {answered}/{n} in {elapsed:.1f} s{'' if done else ' (gave up waiting)'}: "
        f"{answered / elapsed:.1f} lookups/s; upstream calls {upstreams.count('fx')}, peak in flight "
        f"{upstreams.peak['fx']}; lost {n - answered}, duplicates {sum(max(0, r - 1) for r in replies)}"
    )
    print(
        f"workers' CPU {worker_cpu:.1f} s: {worker_cpu * 1000 / max(answered, 1):.1f} ms per lookup, so "
        f"{answered / max(worker_cpu, 1e-9):.0f} lookups/s per core it has to itself (the bench, bot, "
        f"emulators and Redis share these cores); a worker's RSS {worker_rss:.0f} MB"
    )


if __name__ == "__main__":
    main()
