"""The production install runs: a venv made from requirements.txt alone (what the Dockerfile
installs), with only bot/, tasks/ and config/ beside it, runs a worker, beat and the bot, and
answers a real lookup — on the Redis broker, and on RabbitMQ where it is reachable. The dev
pins cannot hide a missing runtime dependency here (they once did: kombu's Redis transport
needs `packaging`). The venv is cached between runs, keyed by the hash of requirements.txt."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import ROOT, amqp_url_or_skip, wait_until

IMAGE_DIRS = ("bot", "tasks", "config")  # what the Dockerfile copies


def _prod_venv() -> Path:
    requirements = (ROOT / "requirements.txt").read_bytes()
    digest = hashlib.sha256(requirements + sys.version.encode()).hexdigest()[:16]
    venv = Path(tempfile.gettempdir()) / f"chatbot-prod-venv-{digest}"
    done = venv / ".installed"
    if done.exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", str(ROOT / "requirements.txt")],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if install.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        pytest.fail(f"pip install -r requirements.txt failed:\n{install.stderr[-3000:]}")
    os.chmod(venv, 0o755)
    done.touch()
    return venv


_PROBED: dict[str, tuple[int, int] | None] = {}


def _unprivileged(python: Path | None = None) -> tuple[int, int] | None:
    """nobody's uid and gid when the tests run as root (the image runs as a system user) and
    nobody may run the venv's interpreter (not so where Python lives under /root, as pyenv's
    does); None otherwise, and the processes run as the current user."""
    if "ids" in _PROBED:
        return _PROBED["ids"]
    ids = None
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam("nobody")
        ids = (entry.pw_uid, entry.pw_gid)
    if os.getuid() != 0 or ids is None or python is None:
        return None
    try:
        runs = subprocess.run([str(python), "-c", "pass"], timeout=30, check=False, preexec_fn=_drop(ids))
        _PROBED["ids"] = ids if runs.returncode == 0 else None
    except OSError:  # nobody may not even execute it
        _PROBED["ids"] = None
    return _PROBED["ids"]


def _drop(ids: tuple[int, int] | None) -> Any:
    def drop() -> None:
        if ids is not None:
            os.setgid(ids[1])
            os.setuid(ids[0])

    return drop


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the venv's python, an app folder holding only what the image holds)."""
    venv = _prod_venv()
    app = Path(tempfile.mkdtemp(prefix="chatbot-image-"))
    for name in IMAGE_DIRS:
        shutil.copytree(ROOT / name, app / name, ignore=shutil.ignore_patterns("__pycache__"))
    if (ids := _unprivileged(venv / "bin" / "python")) is not None:
        for path in [app, *app.rglob("*")]:
            os.chown(path, *ids)
    yield venv / "bin" / "python", app
    shutil.rmtree(app, ignore_errors=True)


def _start(argv: list[str], app: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, cwd=app, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_drop(_unprivileged()),
        )  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_the_production_install_answers_a_lookup_with_worker_and_beat(
    image: tuple[Path, Path], redis_server: Any, upstreams: Any, broker: str, tmp_path: Path
) -> None:
    python, app = image
    amqp = amqp_url_or_skip() if broker == "rabbitmq" else ""
    queue = f"install-{uuid.uuid4().hex[:8]}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(app),
        **{k: v for k, v in os.environ.items() if k.endswith("_API_URL") or k.startswith("OPEN_METEO")},
        "REDIS_URL": f"{redis_server.url}/8",
        "CELERY_BROKER_URL": f"{redis_server.url}/9" if broker == "redis" else amqp,
        "CELERY_QUEUE": queue,
        "WORKER_METRICS_PORT": "0",
        "LOG_LEVEL": "INFO",
        "CONSOLE_DRAIN_TIMEOUT": "30",
    }
    log = tmp_path / "processes.log"
    worker = _start([str(python), "-m", "celery", "-A", "tasks", "worker", "-c", "1", "-n", f"{queue}@%h",
                     "--without-gossip", "--without-mingle"], app, env, log)  # fmt: skip
    beat = _start([str(python), "-m", "celery", "-A", "tasks", "beat", "-s", str(app / "beat-schedule")],
                  app, env, log)  # fmt: skip
    client = redis.Redis.from_url(env["REDIS_URL"])
    try:
        assert wait_until(lambda: b"ready." in log.read_bytes() or worker.poll() is not None, timeout=60)
        assert worker.poll() is None, log.read_text()[-3000:]
        # Beat sends a heartbeat as it starts (not one interval, 30 s, later); the worker runs it.
        assert wait_until(lambda: client.get("beat:last_seen"), timeout=20), log.read_text()[-3000:]
        answer = subprocess.run(
            [str(python), "-m", "bot"], cwd=app, env=env, input="/fx 3 EUR USD\n", capture_output=True,
            text=True, timeout=90, check=False, preexec_fn=_drop(_unprivileged()),
        )  # fmt: skip
        assert answer.returncode == 0, answer.stderr[-3000:]
        assert answer.stdout.strip().startswith("3.00 EUR = "), answer.stdout + answer.stderr[-2000:]
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    finally:
        _stop(beat)
        _stop(worker)
        client.flushdb()
        client.close()
