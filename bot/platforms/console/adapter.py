"""The console adapter: the terminal is a chat with one user.

connect → listen (stdin lines become Requests) → worker replies come back through a Redis
list that this process pops (sender.py pushes them) → disconnect. With piped input, end of input waits
(bounded by CONSOLE_DRAIN_TIMEOUT) for the replies still owed, then exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

import redis.asyncio as aioredis
import redis.exceptions

from bot.core import connect, keys
from bot.core.queue import TaskQueue
from bot.core.request import Request
from bot.pipeline import Outcome, Pipeline, parse_command
from bot.platforms.console.sender import REPLY_LIST_TTL
from config import Settings

log = logging.getLogger(__name__)

PLATFORM = "console"
POLL_SECONDS = 1


class ConsoleAdapter:
    def __init__(
        self,
        pipeline: Pipeline,
        settings: Settings,
        write: Callable[[str], None],
        user: str = "local",
        session: str | None = None,
    ):
        self.pipeline = pipeline
        self.settings = settings
        self.write = write
        self.user = user
        self.session = session or secrets.token_hex(4)
        self.pending: set[str] = set()
        self._shown: set[str] = set()  # request ids whose reply was written
        self._ids = itertools.count(1)
        self._idle = asyncio.Event()
        self._idle.set()
        self._listener: asyncio.Task[None] | None = None
        self._stopping = False
        # BLMOVE blocks for POLL_SECONDS: the socket timeout must be longer than that.
        pool = connect.async_pool(
            settings,
            max_connections=16,
            timeout=settings.REDIS_TIMEOUT,
            socket_timeout=POLL_SECONDS + settings.REDIS_TIMEOUT,
            socket_connect_timeout=settings.REDIS_TIMEOUT,
        )
        self._redis = aioredis.Redis(connection_pool=pool)

    async def connect(self) -> None:
        """Start popping worker replies addressed to this console session."""
        self._listener = asyncio.create_task(self._listen())

    async def send_line(self, line: str) -> None:
        """One line typed by the user: answer at once, or remember that a worker owes a reply."""
        text = line.strip()
        if not text:
            return
        parsed = parse_command(text)
        request = Request(
            platform=PLATFORM,
            chat=self.session,
            user=self.user,
            request_id=f"{PLATFORM}:{self.session}-{next(self._ids)}",
            command=parsed.command,
            args=parsed.args,
            received_at=time.time(),
            locale=os.environ.get("LANG", ""),  # "de_DE.UTF-8" reads German
        )

        async def answer(outcome: Outcome) -> None:
            if outcome.queued:
                self.pending.add(request.request_id)
                self._idle.clear()
            if outcome.reply is not None:
                self.write(outcome.reply.shown)

        await self.pipeline.handle(request, answer=answer)

    async def drain(self, timeout: float) -> bool:
        """Wait until every queued request has its reply; False if some never came."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def disconnect(self) -> None:
        # Cancelling a task blocked in BLMOVE can wedge redis-py's connection teardown; the
        # listener instead notices the flag within one poll and returns by itself.
        self._stopping = True
        if self._listener:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await self._redis.rpush(keys.console_replies(self.session), "{}")  # wake BLMOVE now
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._listener, POLL_SECONDS + self.settings.REDIS_TIMEOUT)
        await self._redis.aclose()

    async def _listen(self) -> None:
        """Pop replies with BLMOVE onto a list of this session's own and remove each from it
        only once written: a pop whose answer the process never read (it stalled past the
        socket timeout, and redis-py dropped the connection) leaves its reply there, to be
        taken again, instead of losing it as BLPOP did."""
        key = keys.console_replies(self.session)
        taking = keys.console_taking(self.session)
        backlog = True  # what an earlier pop left on the taking list
        while not self._stopping:
            try:
                if backlog:
                    items = await self._redis.lrange(taking, 0, -1)
                    backlog = False
                else:
                    item = await self._redis.blmove(key, taking, POLL_SECONDS, "LEFT", "RIGHT")
                    items = [item] if item is not None else []
                for raw in items:
                    item = raw.decode() if isinstance(raw, bytes) else raw
                    self._show(item)
                    done = self._redis.pipeline(transaction=False)
                    done.lrem(taking, 1, item)
                    done.expire(taking, REPLY_LIST_TTL)  # a session that went away: it expires
                    await done.execute()
            except (redis.exceptions.RedisError, OSError) as exc:
                log.warning("console: waiting for Redis to come back: %r", exc)
                backlog = True
                await asyncio.sleep(POLL_SECONDS)  # back off before reconnecting

    def _show(self, item: str) -> None:
        payload = json.loads(item)
        if "request_id" not in payload:
            return  # the wake-up pushed by disconnect()
        if payload["request_id"] not in self.pending and payload["request_id"] in self._shown:
            return  # written already; only its removal from the taking list was lost
        self._shown.add(payload["request_id"])
        self.pending.discard(payload["request_id"])
        self.write(payload["text"])
        if not self.pending:
            self._idle.set()


def _stdin_lines(stream: IO[str], loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Read stdin in a daemon thread, so Ctrl-C never waits on a blocked readline."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        for line in stream:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    return queue


async def run(settings: Settings, redis_client: Any, queue: TaskQueue, stdin: IO[str] = sys.stdin) -> int:
    interactive = stdin.isatty()

    def write(text: str) -> None:
        print(text, flush=True)

    pipeline = Pipeline(settings, redis_client, queue)
    adapter = ConsoleAdapter(pipeline, settings, write)
    await adapter.connect()
    if interactive:
        print("Console chat. Type /help for commands, Ctrl-C or Ctrl-D to quit.", flush=True)
    lines = _stdin_lines(stdin, asyncio.get_running_loop())
    try:
        while (line := await lines.get()) is not None:
            await adapter.send_line(line)
        if adapter.pending and not await adapter.drain(settings.CONSOLE_DRAIN_TIMEOUT):
            print(
                f"(gave up waiting after {settings.CONSOLE_DRAIN_TIMEOUT:g} s for "
                f"{len(adapter.pending)} repl{'y' if len(adapter.pending) == 1 else 'ies'};"
                " is a worker running?)",
                file=sys.stderr,
                flush=True,
            )
    finally:
        await adapter.disconnect()
        await pipeline.close()
    return 0
