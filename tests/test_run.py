"""`make run` and `python -m bot` end to end, as a user runs them."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid

import pytest

from dev.redis_server import free_port
from tests.conftest import ROOT, Worker, amqp_url_or_skip


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too; it only waits for its parent.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_with_piped_input_answers_and_exits(upstreams) -> None:
    """No Redis at REDIS_URL: the embedded redis-server, a worker and the bot all start,
    both lines are answered, and nothing is left running afterwards."""
    dead_port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "CELERY_QUEUE", "MAKEFLAGS")}
    env["REDIS_URL"] = f"redis://127.0.0.1:{dead_port}/0"
    result = subprocess.run(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT, env=env, input="/ping\n/fx 1 EUR USD\n", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "pong" in lines
    assert "1.00 EUR = 1.09 USD (ECB rate of Nov 27, 2026)" in lines
    started = re.search(r"started redis-server on port (\d+)", result.stderr)
    assert started, result.stderr
    worker_pid = re.search(r"worker pid (\d+)", result.stderr)
    assert worker_pid, result.stderr
    assert not _listening(int(started[1])), "embedded redis-server left running"
    assert not _alive(int(worker_pid[1])), "worker left running"


@pytest.fixture
def rabbitmq_url() -> str:
    return amqp_url_or_skip()


def console_session(lines: str, name: str, **settings: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """`python -m bot` on the console with a worker of its own (on a queue of its own, with
    the given settings): what the user saw, and the worker's log."""
    queue = f"test-{name}-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "CELERY_QUEUE": queue, "WORKER_METRICS_PORT": "0", **settings}
    worker = Worker(env, concurrency=1, name=name).start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bot"],
            cwd=ROOT,
            env=env,
            input=lines,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        worker.stop()
    assert result.returncode == 0, result.stderr
    return result, worker.logs()


def test_the_same_flow_works_with_rabbitmq_as_broker(rabbitmq_url: str, upstreams) -> None:
    result, logs = console_session(
        "/fx 2 USD GBP\n/wiki Alan Turing\n", "amqp", CELERY_BROKER_URL=rabbitmq_url
    )
    assert "2.00 USD = 1.57 GBP (ECB rate of Nov 27, 2026)" in result.stdout
    assert "Alan Turing" in result.stdout
    assert upstreams.count("fx") == 1
    assert "amqp://guest:**@localhost:5672//" in logs


@pytest.mark.parametrize("inline", [True, False])
def test_the_lookup_sends_its_reply_itself_unless_told_not_to(inline: bool, upstreams) -> None:
    """DELIVER_INLINE (default): the lookup sends and drops the chained deliver task, so no
    deliver task runs; with it off, the deliver task after the lookup sends."""
    result, logs = console_session("/fx 3 USD GBP\n/wiki Alan Turing\n", "inline", DELIVER_INLINE=str(inline))
    assert result.stdout.count("3.00 USD = 2.36 GBP (ECB rate of Nov 27, 2026)") == 1
    assert result.stdout.count("Alan Turing\n") == 1
    assert logs.count("Task lookup[") >= 2
    assert logs.count("Task deliver[") == (0 if inline else 4), logs  # received + succeeded, twice


def test_ctrl_c_stops_every_process_make_run_started(upstreams) -> None:
    """Like a terminal: SIGINT goes to the whole foreground process group."""
    import signal
    import threading

    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "CELERY_QUEUE", "MAKEFLAGS")}
    env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    stdout: list[str] = []
    stderr: list[str] = []
    pong = threading.Event()

    def read(stream, sink, event=None):
        for line in stream:
            sink.append(line)
            if event is not None and line.strip() == "pong":
                event.set()

    threads = [
        threading.Thread(target=read, args=(process.stdout, stdout, pong), daemon=True),
        threading.Thread(target=read, args=(process.stderr, stderr), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        assert process.stdin is not None
        process.stdin.write("/ping\n")
        process.stdin.flush()
        assert pong.wait(60), "".join(stderr)
        os.killpg(process.pid, signal.SIGINT)
        process.wait(60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    for thread in threads:
        thread.join(5)
    text = "".join(stderr)
    started = re.search(r"started redis-server on port (\d+)", text)
    worker_pid = re.search(r"worker pid (\d+)", text)
    assert started and worker_pid, text
    assert not _listening(int(started[1])), "embedded redis-server left running"
    assert not _alive(int(worker_pid[1])), "worker left running"
    assert "Traceback" not in text
