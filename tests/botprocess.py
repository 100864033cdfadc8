"""`python -m bot` as a user runs it, in a subprocess, for tests on the platform emulators."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import requests

from dev.redis_server import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent


class BotProcess:
    def __init__(
        self,
        env: dict[str, str],
        connections: Callable[[], int],
        wait_for: Callable[[Callable[[], bool], float], object],
        port: int | None = None,
    ):
        """`connections()` counts how often the platform emulator saw a bot connect (polls
        started, webhooks set, shards identified); `wait_for(predicate, timeout)` is the
        emulator's condition wait. A start is complete when the count has grown."""
        self.port = port or free_port()
        self.env = {**env, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(self.port)}
        self.connections = connections
        self.wait_for = wait_for
        self.expected_connections = 1
        self.log = Path(tempfile.mkstemp(prefix="bot-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> BotProcess:
        before = self.connections()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot"], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        process = self.process
        target = before + self.expected_connections
        self.wait_for(lambda: process.poll() is not None or self.connections() >= target, timeout)
        if process.poll() is not None or self.connections() < target:
            raise RuntimeError(f"bot did not start:\n{self.logs()[-3000:]}")
        try:
            wait_until(self._healthy, timeout, interval=0.05)
        except AssertionError:
            raise RuntimeError(f"bot HTTP server did not answer:\n{self.logs()[-3000:]}") from None
        return self

    def _healthy(self) -> bool:
        with contextlib.suppress(requests.RequestException):
            return requests.get(f"{self.url}/healthz", timeout=1).ok
        return False

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode if self.process else None

    def logs(self) -> str:
        return self.log.read_text(errors="replace")
