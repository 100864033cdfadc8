"""Real components for every test: a private redis-server, a real Celery worker process,
emulated upstreams on loopback, and a chat to type into.

    def test_ping(chat):
        chat.send("/ping")
        assert chat.reply() == "pong"
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import queue
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from dev.redis_server import RedisServer, free_port
from tests.waiting import wait_until

__all__ = ["wait_until"]

ROOT = Path(__file__).resolve().parent.parent


class Lazy:
    """A server the suite may need, on a port fixed before any test runs (so settings can
    name it), started the first time a test touches it: a parser test starts nothing."""

    def __init__(self, make: Callable[[int], Any]):
        self.port = free_port()
        self._make = make
        self._server: Any = None

    @property
    def started(self) -> bool:
        return self._server is not None

    def get(self) -> Any:
        if self._server is None:
            self._server = self._make(self.port).start()
        return self._server

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()


_REDIS: Any = None
_UPSTREAMS: Any = None
_TELEGRAM: Any = None
_DISCORD: Any = None
_SENTRY: Any = None

# Small numbers so retries and limits play out in well under a second.
TEST_ENV = {
    "LOOKUP_MAX_RETRIES": "3",
    "LOOKUP_RETRY_BACKOFF": "0.05",
    "LOOKUP_RETRY_BACKOFF_MAX": "0.5",
    "UPSTREAM_CONNECT_TIMEOUT": "1",
    "UPSTREAM_READ_TIMEOUT": "1",
    "TELEGRAM_INLINE_WAIT": "1",
    "RATE_LIMIT": "30/minute",
    "RATE_LIMIT_BURST": "5",
    "NEGATIVE_CACHE_TTL": "60",
    "CONSOLE_DRAIN_TIMEOUT": "20",
    "CELERY_QUEUE": "test",
    "LOG_LEVEL": "INFO",
    "ADMINS": "console:admin,telegram:4242,discord:4242",
    "BREAKER_FAILURES": "5",
    "BREAKER_WINDOW": "30",
    "BREAKER_COOLDOWN": "1.5",
    "UPSTREAM_RATE_LIMITS": "open-meteo-geocoding=4/second",
    "YELP_API_KEY": "test-yelp-key-0123456789",
    "FOURSQUARE_API_KEY": "test-foursquare-key-0123456789",
    "GOOGLE_PLACES_API_KEY": "test-google-key-0123456789",
    # Telegram's outbound limits, scaled down so tests see them bite within seconds.
    "TELEGRAM_GLOBAL_RATE": "10/second",
    "TELEGRAM_CHAT_RATE": "2/second",
    "TELEGRAM_CHAT_BURST": "2",
    "TELEGRAM_GROUP_RATE": "30/minute",
}


UPSTREAM_URLS = {  # setting -> the emulator's path
    "FX_API_URL": "fx",
    "WIKI_API_URL": "wiki",
    "OPEN_METEO_GEOCODING_URL": "geocoding",
    "OPEN_METEO_URL": "forecast",
    "YELP_API_URL": "yelp",
    "FOURSQUARE_API_URL": "foursquare",
    "GOOGLE_PLACES_API_URL": "google",
}


def pytest_configure(config: pytest.Config) -> None:
    """Name Redis and the emulators in the environment before any test module imports
    settings; each starts when a test first needs it."""
    global _REDIS, _UPSTREAMS, _TELEGRAM, _DISCORD, _SENTRY
    if hasattr(config, "workerinput"):
        return
    from tests.chat_discord import TOKEN as DISCORD_TOKEN
    from tests.chat_telegram import TOKEN
    from tests.emulators.discord import DiscordEmulator
    from tests.emulators.sentry import SentryEmulator
    from tests.emulators.telegram import TelegramEmulator
    from tests.emulators.upstreams import Upstreams

    _REDIS = Lazy(lambda port: RedisServer(port=port))
    _UPSTREAMS = Lazy(lambda port: Upstreams(port))
    _TELEGRAM = Lazy(lambda port: TelegramEmulator(TOKEN, port))
    _DISCORD = Lazy(lambda port: DiscordEmulator(DISCORD_TOKEN, port=port))
    _SENTRY = Lazy(lambda port: SentryEmulator(port))
    upstreams = f"http://127.0.0.1:{_UPSTREAMS.port}"
    os.environ.update(TEST_ENV)
    # App data in db 0, the Celery broker in db 1: tests flush db 0 between them without
    # touching kombu's queue bindings.
    redis_url = f"redis://127.0.0.1:{_REDIS.port}"
    os.environ["REDIS_URL"] = f"{redis_url}/0"
    os.environ["CELERY_BROKER_URL"] = f"{redis_url}/1"
    for name, provider in UPSTREAM_URLS.items():
        os.environ[name] = f"{upstreams}/{provider}"
    # The token is given only to the processes that talk to Telegram (worker, bot process),
    # so console-mode subprocesses in other tests stay in console mode.
    os.environ["TELEGRAM_API_URL"] = f"http://127.0.0.1:{_TELEGRAM.port}"
    os.environ["SENTRY_DSN"] = f"http://publickey0123456789@127.0.0.1:{_SENTRY.port}/1"
    os.environ["SENTRY_ENVIRONMENT"] = "test"
    os.environ["DISCORD_API_URL"] = f"http://127.0.0.1:{_DISCORD.port}/api/v10"
    os.environ["DISCORD_GATEWAY_URL"] = f"ws://127.0.0.1:{_DISCORD.port}/gateway"


def pytest_unconfigure(config: pytest.Config) -> None:
    for server in (_SENTRY, _DISCORD, _TELEGRAM, _UPSTREAMS, _REDIS):
        if server is not None:
            server.stop()


AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@localhost:5672//")


def amqp_url_or_skip() -> str:
    """RabbitMQ's URL for tests that run on it too, or a skip with the reason."""
    import kombu

    try:
        with kombu.Connection(AMQP_URL, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        pytest.skip(f"RabbitMQ is not reachable at {AMQP_URL} ({type(exc).__name__})")
    return AMQP_URL


@pytest.fixture(scope="session")
def redis_server() -> RedisServer:
    return _REDIS.get()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def upstreams() -> Any:
    server = _UPSTREAMS.get()
    server.reset()
    yield server
    server.reset()


@pytest.fixture(autouse=True)
def _clean_app_data() -> None:
    """Each test starts with empty app data (cache, limits, bans); broker db untouched. A
    Redis that no test has started yet is empty anyway."""
    if not _REDIS.started:
        return
    client = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5)
    client.flushdb()
    client.close()


class Worker:
    """A real `celery -A tasks worker` process with the test environment."""

    def __init__(self, env: dict[str, str], concurrency: int = 2, name: str = "w1"):
        self.env = env
        self.concurrency = concurrency
        self.name = name
        self.log = Path(tempfile.mkstemp(prefix=f"worker-{name}-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Worker:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-l", "INFO",
                 "-c", str(self.concurrency), "-n", f"{self.name}-{uuid.uuid4().hex[:6]}@%h",
                 "--without-gossip", "--without-mingle"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        process = self.process
        wait_until(lambda: b"ready." in self.log.read_bytes() or process.poll() is not None, timeout)
        if process.poll() is not None:
            raise RuntimeError(f"worker exited at start:\n{self.log.read_text()[-3000:]}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, 15)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="session")
def worker(redis_server: RedisServer) -> Iterator[Worker]:
    """Its lookups call the upstream emulators and it reports to Sentry: both start with it."""
    from tests.chat_discord import TOKEN as DISCORD_TOKEN

    _UPSTREAMS.get()
    _SENTRY.get()
    from tests.chat_telegram import TOKEN

    env = {
        **os.environ,
        "TELEGRAM_TOKEN": TOKEN,
        "DISCORD_TOKEN": DISCORD_TOKEN,
        "WORKER_METRICS_PORT": str(free_port()),
        # Prefork, whose pool processes test_chaos kills and whose metrics add up across
        # processes; the default pool (threads) runs in every stack of tests/stacks.py.
        "WORKER_POOL": "prefork",
    }
    w = Worker(env).start()
    yield w
    w.stop()


class LoopThread:
    """An asyncio loop in a thread: the bot's async code runs here, tests stay synchronous."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bot-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 15.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="session")
def bot_loop() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.stop()


class Chat:
    """A console chat with the real adapter and pipeline: send a line, read the replies."""

    def __init__(self, loop: LoopThread, user: str):
        from bot.main import make_redis
        from bot.pipeline import Pipeline
        from bot.platforms.console.adapter import ConsoleAdapter
        from config import get_settings
        from tasks.enqueue import CeleryQueue

        self.loop = loop
        self.user = user
        self.replies: queue.Queue[str] = queue.Queue()
        settings = get_settings()

        async def build() -> ConsoleAdapter:
            self.redis = make_redis(settings)
            adapter = ConsoleAdapter(
                Pipeline(settings, self.redis, CeleryQueue(settings)), settings, self.replies.put, user=user
            )
            await adapter.connect()
            return adapter

        self.adapter: ConsoleAdapter = loop.run(build())

    def send(self, text: str) -> None:
        self.loop.run(self.adapter.send_line(text))

    def reply(self, timeout: float = 15.0) -> str:
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no reply within {timeout} s") from None

    def immediate_reply(self) -> str:
        """The reply the adapter gave while handling the message (no worker involved)."""
        try:
            return self.replies.get_nowait()
        except queue.Empty:
            raise AssertionError("no immediate reply: the message was queued") from None

    def assert_no_reply(self, within: float = 0.5) -> None:
        with contextlib.suppress(queue.Empty):
            extra = self.replies.get(timeout=within)
            raise AssertionError(f"unexpected extra reply: {extra!r}")

    def close(self) -> None:
        async def close() -> None:
            await self.adapter.disconnect()
            await self.redis.aclose()

        self.loop.run(close())


@pytest.fixture
def make_chat(bot_loop: LoopThread, worker: Worker) -> Iterator[Callable[..., Chat]]:
    chats: list[Chat] = []

    def make(user: str | None = None) -> Chat:
        chat = Chat(bot_loop, user or f"user-{uuid.uuid4().hex[:8]}")
        chats.append(chat)
        return chat

    yield make
    for chat in chats:
        chat.close()


@pytest.fixture
def chat(make_chat: Callable[..., Chat]) -> Chat:
    return make_chat()


@pytest.fixture
def telegram() -> Any:
    """The Telegram Bot API emulator, emptied for this test."""
    _TELEGRAM.reset()
    return _TELEGRAM.get()


_TG_USER_IDS = itertools.count(500_000 + os.getpid() % 1_000 * 1_000_000)


@pytest.fixture
def make_tg_chat(telegram: Any) -> Callable[..., Any]:
    from tests.chat_telegram import TelegramChat

    def make(chat_type: str = "private", user_id: int | None = None) -> TelegramChat:
        # Unique for the whole session: random ids could make two chats of one test one chat
        # (and one of them "got" the other's reply).
        user = user_id or next(_TG_USER_IDS)
        chat_id = user if chat_type == "private" else -(1_000_000_000 + user)
        return TelegramChat(telegram, chat_id, user, chat_type)

    return make


@pytest.fixture
def discord_emulator() -> Any:
    """The Discord REST + gateway emulator, its records emptied for this test."""
    _DISCORD.reset()
    return _DISCORD.get()


@pytest.fixture
def make_discord_chat(discord_emulator: Any) -> Callable[..., Any]:
    from tests.chat_discord import DiscordChat

    def make(guild: int = 0, user_id: int | None = None) -> DiscordChat:
        return DiscordChat(
            discord_emulator, discord_emulator.guilds[guild], user_id or 10**17 + uuid.uuid4().int % 10**9
        )

    return make


@pytest.fixture
def sentry() -> Any:
    """The local Sentry endpoint every bot and worker process of the suite reports to."""
    return _SENTRY.get()
