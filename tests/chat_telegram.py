"""A running bot process on the Telegram emulator, and a chat to type into."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bot.devstack import free_port
from tests.emulators.telegram import TelegramEmulator

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "7000001:AAH-test-token_0123456789abcdefghij"
WEBHOOK_SECRET = "test-secret_0123456789abcdef"


class BotProcess:
    """`python -m bot` as a user runs it, with TELEGRAM_TOKEN set."""

    def __init__(
        self, emulator: TelegramEmulator, mode: str = "polling", extra_env: dict[str, str] | None = None
    ):
        self.emulator = emulator
        self.mode = mode
        self.port = free_port()
        self.log = Path(tempfile.mkstemp(prefix="bot-", suffix=".log")[1])
        self.env = {
            **os.environ,
            "TELEGRAM_TOKEN": TOKEN,
            "TELEGRAM_API_URL": emulator.url,
            "TELEGRAM_MODE": mode,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.port),
            **(extra_env or {}),
        }
        if mode == "webhook":
            self.env["TELEGRAM_WEBHOOK_URL"] = f"{self.url}/telegram/webhook"
            self.env["TELEGRAM_WEBHOOK_SECRET"] = WEBHOOK_SECRET
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> BotProcess:
        calls_before = self.emulator.calls("getUpdates" if self.mode == "polling" else "setWebhook")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot"], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        method = "getUpdates" if self.mode == "polling" else "setWebhook"
        process = self.process
        ready = self.emulator.wait_for(
            lambda: (
                process.poll() is not None
                or sum(1 for _, m in self.emulator.state.calls if m == method) > calls_before
            ),
            timeout,
        )
        if not ready or process.poll() is not None:
            raise RuntimeError(f"bot did not start:\n{self.logs()[-3000:]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return self
            time.sleep(0.05)  # poll until the HTTP server accepts connections
        raise RuntimeError(f"bot HTTP server did not answer:\n{self.logs()[-3000:]}")

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


class TelegramChat:
    """`chat.send("/ping")` then `assert "pong" in chat.reply()`, on the emulator."""

    def __init__(self, emulator: TelegramEmulator, chat_id: int, user_id: int, chat_type: str = "private"):
        self.emulator = emulator
        self.chat_id = chat_id
        self.user_id = user_id
        self.chat_type = chat_type
        self.seen = 0  # replies already returned by reply()

    def send(self, text: str, **kwargs: Any) -> dict[str, Any]:
        update = self.emulator.message_update(
            self.chat_id, self.user_id, text, chat_type=self.chat_type, **kwargs
        )
        self.emulator.push(update)
        return update

    def replies(self) -> list[str]:
        return [m.text for m in self.emulator.messages(self.chat_id)]

    def reply(self, timeout: float = 15.0) -> str:
        index = self.seen
        found = self.emulator.wait_for(lambda: len(self.emulator.messages(self.chat_id)) > index, timeout)
        if not found:
            raise AssertionError(f"no reply in chat {self.chat_id} within {timeout} s; got {self.replies()}")
        self.seen += 1
        return self.emulator.messages(self.chat_id)[index].text

    def assert_no_reply(self, within: float = 0.5) -> None:
        index = self.seen
        extra = self.emulator.wait_for(lambda: len(self.emulator.messages(self.chat_id)) > index, within)
        assert not extra, f"unexpected extra reply: {self.replies()[index:]}"
