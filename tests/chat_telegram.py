"""A running bot process on the Telegram emulator, and a chat to type into."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from dev.redis_server import free_port
from tests.botprocess import BotProcess
from tests.emulators.telegram import TelegramEmulator

TOKEN = "7000001:AAH-test-token_0123456789abcdefghij"
WEBHOOK_SECRET = "test-secret_0123456789abcdef"


def telegram_bot(
    emulator: TelegramEmulator, mode: str = "polling", extra_env: dict[str, str] | None = None
) -> BotProcess:
    """A bot process talking to the Telegram emulator, ready once it polls or set its webhook."""
    port = free_port()
    env = {
        **os.environ,
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": emulator.url,
        "TELEGRAM_MODE": mode,
        **(extra_env or {}),
    }
    if mode == "webhook":
        env["TELEGRAM_WEBHOOK_URL"] = f"http://127.0.0.1:{port}/telegram/webhook"
        env["TELEGRAM_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    method = "getUpdates" if mode == "polling" else "setWebhook"
    return BotProcess(env, lambda: emulator.calls_total(method), emulator.wait_for, port=port)


@contextlib.contextmanager
def running(
    emulator: TelegramEmulator, mode: str = "polling", no_tracebacks: bool = True
) -> Iterator[BotProcess]:
    """A bot process for a module's tests: started on a clean emulator, stopped cleanly after
    (exit 0, and by default no traceback in its log); the webhook is forgotten afterwards, as
    if deleted, so later tests may poll again."""
    emulator.reset()
    bot = telegram_bot(emulator, mode=mode).start()
    try:
        yield bot
    finally:
        code = bot.stop()
        emulator.state.webhook_url = ""
    assert code == 0, bot.logs()[-3000:]
    if no_tracebacks:
        assert "Traceback" not in bot.logs(), bot.logs()[-3000:]


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
