"""The deploy files: compose against the Compose Specification and Debian's docker-compose, the
image, the Procfile, Prometheus rules (promtool), Grafana provisioning, and nginx in front of
two bot replicas. Real tools where installed (.ci/run installs them); skipped with the reason
where not."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from dev.redis_server import free_port
from tests.botprocess import BotProcess
from tests.chat_telegram import telegram_bot
from tests.conftest import ROOT, wait_until

# --- deploy files -------------------------------------------------------------------------------------------
COMPOSE_SCHEMA = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")


def test_compose_file_matches_the_compose_specification() -> None:
    import jsonschema

    if not COMPOSE_SCHEMA.exists():
        pytest.skip("the Compose Specification schema ships with Debian's docker-compose; not installed")
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    jsonschema.Draft201909Validator(schema).validate(compose)
    assert {"redis", "bot", "worker", "beat", "prometheus", "grafana", "nginx"} <= set(compose["services"])
    assert compose["services"]["nginx"]["profiles"] == ["webhook"]
    assert compose["services"]["rabbitmq"]["profiles"] == ["rabbitmq"]


def test_docker_compose_config_passes(tmp_path: Path) -> None:
    tool = shutil.which("docker-compose")
    if not tool:
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")
    for item in ("docker-compose.yml", "Dockerfile", "prometheus", "grafana", "nginx"):
        source = ROOT / item
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / item)
    (tmp_path / ".env").write_text("")
    for profile in ([], ["--profile", "webhook"], ["--profile", "rabbitmq"]):
        result = subprocess.run(
            [tool, *profile, "config", "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr


def test_dockerfile_runs_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\S+", text, re.M)


def test_procfile_has_bot_worker_and_beat() -> None:
    entries = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()
    )
    assert entries == {"bot": "python -m bot", "worker": "celery -A tasks worker --loglevel=INFO",
                       "beat": "celery -A tasks beat --loglevel=INFO"}  # fmt: skip


@pytest.mark.parametrize(
    ("what", "path"), [("config", "prometheus/prometheus.yml"), ("rules", "prometheus/alerts.yml")]
)
def test_promtool_accepts_the_prometheus_files(what: str, path: str) -> None:
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    result = subprocess.run(
        [promtool, "check", what, str(ROOT / path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning_parses() -> None:
    dashboard = json.loads((ROOT / "grafana" / "dashboards" / "chatbot.json").read_text())
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in (
        "traffic",
        "hit ratio",
        "latency",
        "errors",
        "retries",
        "queue",
        "breakers",
        "dead letters",
    ):
        assert topic in titles
    datasource = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["uid"] == "prometheus"


# --- nginx in front of two replicas -------------------------------------------------------------
def _render_nginx(port: int, upstreams: list[int]) -> str:
    template = (ROOT / "nginx" / "templates" / "chatbot.conf.template").read_text()
    servers = " ".join(f"server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in upstreams)
    return template.replace("${NGINX_UPSTREAM_SERVERS}", servers).replace(
        "${NGINX_PORT}", f"127.0.0.1:{port}"
    )


@pytest.fixture
def nginx_stack(worker: Any) -> Iterator[tuple[str, list[BotProcess]]]:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not binary:
        pytest.skip("nginx is not installed (Debian package nginx)")
    from tests.conftest import _TELEGRAM

    _TELEGRAM.reset()
    port = free_port()
    bots = [telegram_bot(_TELEGRAM, mode="webhook") for _ in range(2)]
    for bot in bots:
        bot.env["TELEGRAM_WEBHOOK_URL"] = f"http://127.0.0.1:{port}/telegram/webhook"
    root = Path(tempfile.mkdtemp(prefix="nginx-"))
    (root / "logs").mkdir()
    conf = root / "nginx.conf"
    conf.write_text(
        f"worker_processes 1;\nerror_log {root}/logs/error.log;\npid {root}/nginx.pid;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n access_log off;\n client_body_temp_path {root}/body;\n proxy_temp_path {root}/proxy;\n"
        f" {_render_nginx(port, [b.port for b in bots])}\n}}\n"
    )
    process = subprocess.Popen(
        [binary, "-p", str(root), "-c", str(conf), "-g", "daemon off;"], stderr=subprocess.PIPE
    )
    try:
        wait_until(lambda: _up(f"http://127.0.0.1:{port}/nginx-health"), timeout=10)
        for bot in bots:
            bot.start()
        yield f"http://127.0.0.1:{port}", bots
    finally:
        for bot in bots:
            bot.stop()
        process.terminate()
        process.wait(10)
        _TELEGRAM.state.webhook_url = ""
        shutil.rmtree(root, ignore_errors=True)


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def _served(bot: BotProcess) -> float:
    text = requests.get(f"{bot.url}/metrics", timeout=10).text
    return sum(
        float(v)
        for v in re.findall(r'^chatbot_messages_total\{[^}]*platform="telegram"[^}]*\} (\S+)', text, re.M)
    )


def test_nginx_spreads_updates_over_replicas_and_survives_losing_one(
    nginx_stack: tuple[str, list[BotProcess]], make_tg_chat: Any, telegram: Any
) -> None:
    _, bots = nginx_stack
    chats = [make_tg_chat() for _ in range(12)]
    for chat in chats:
        chat.send("/ping")
    for chat in chats:
        assert chat.reply() == "pong"
        chat.assert_no_reply(within=0.05)
    assert all(_served(bot) > 0 for bot in bots), "both replicas served traffic"
    bots[0].kill()
    later = [make_tg_chat() for _ in range(8)]
    for chat in later:
        chat.send("/ping")
    for chat in later:
        assert chat.reply(timeout=20) == "pong"
    for chat in chats + later:
        chat.assert_no_reply(within=0.05)
