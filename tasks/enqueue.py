"""The bot process' side of the task queue: `CeleryQueue` implements bot/core/queue.py.

Publishing is blocking kombu I/O: a few threads keep it off the event loop (Celery's
producer pool gives each its own producer). A publish that has not started within
PUBLISH_TIMEOUT is withdrawn — certainly never sent — and the user told the bot is
unavailable; one that is running by then may still land, so its own end decides (kombu bounds
it: the retry policy, socket timeouts): telling "unavailable" and then answering would be two
answers. Once a publish fails, the next ones fail at once for BROKER_BACKOFF instead of
queueing behind it, so that during a broker outage misses are told at once and never hold
the adapter's update slots that cache hits need. A reply the broker cannot take is sent
straight from this process with the workers' sender code (plain HTTP, the same shared limits
and once-only markers). Broker queries (/stats, /health, /readyz, /metrics) run in threads of
their own with timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import chain

from bot.core.request import Reply, Request
from config import Settings
from tasks.app import app
from tasks.deliver import deliver, send
from tasks.lookup import lookup
from tasks.suggest import suggest

log = logging.getLogger(__name__)

PUBLISHERS = 4  # a burst of misses publishes in parallel, not behind one thread
_publisher = ThreadPoolExecutor(max_workers=PUBLISHERS, thread_name_prefix="publish")
BROKER_QUERY_TIMEOUT = 5.0
PUBLISH_TIMEOUT = 3.0  # above the bot's own publish retry policy (tasks/app.py: ~1 s)
BROKER_BACKOFF = 2.0  # after a failed publish, fail at once for this long (or until /readyz sees it)
DIRECT_SEND_TIMEOUT = 15.0


class BrokerUnavailable(Exception):
    pass


class CeleryQueue:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._down_until = 0.0

    async def _publish(self, signature: Any) -> None:
        if time.monotonic() < self._down_until:
            raise BrokerUnavailable("the last publish failed moments ago")
        job = _publisher.submit(signature.apply_async)
        try:
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(job)), PUBLISH_TIMEOUT)
            except TimeoutError:
                if job.cancel():  # it never started: certainly not published
                    raise BrokerUnavailable("no publish slot within PUBLISH_TIMEOUT") from None
                await asyncio.wrap_future(job)  # it is running: its end decides
        except Exception:
            self._down_until = time.monotonic() + BROKER_BACKOFF
            raise

    async def lookup(self, request: Request, params: dict[str, Any], refresh: bool = False) -> None:
        """A miss: lookup then deliver. A refresh: the lookup alone (the user has an answer)."""
        if refresh:
            signature = lookup.s(request.to_dict(), params, refresh=True)
        else:
            signature = chain(lookup.s(request.to_dict(), params), deliver.s())
        await self._publish(signature)

    async def suggest(self, source: str, typed: str) -> None:
        await self._publish(suggest.s(source, typed))

    async def deliver(self, request: Request, reply: Reply) -> None:
        landed = {"request": request.to_dict(), "reply": {"text": reply.text, "kind": reply.kind}}
        try:
            await self._publish(deliver.s(landed))
            return
        except Exception as exc:
            log.warning(
                "%s: broker unavailable for a reply (%r); sending it from here", request.request_id, exc
            )
        try:
            await asyncio.wait_for(asyncio.to_thread(send, request, reply), DIRECT_SEND_TIMEOUT)
        except Exception as exc:  # the platform refuses or is unreachable too: say so loudly
            log.error("%s: reply lost, broker and platform unavailable: %r", request.request_id, exc)

    def depth_now(self) -> str:
        """Messages waiting in the broker queue (Redis or RabbitMQ), or why it is unknown.
        Blocking: for threads (the /metrics gauges)."""
        from kombu.exceptions import ChannelError

        try:
            with app.connection_for_read() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
                try:
                    declared = connection.default_channel.queue_declare(
                        self.settings.CELERY_QUEUE, passive=True
                    )
                except ChannelError:
                    return "0"  # the Redis transport keeps no list for an empty queue
                return str(declared.message_count)
        except Exception as exc:  # broker down: say so in the report rather than fail it
            return f"unknown ({type(exc).__name__})"

    async def depth(self) -> str:
        return await _in_thread(self.depth_now)

    async def workers(self) -> str:
        def ping() -> str:
            replies = app.control.ping(timeout=1.0)
            return f"{len(replies)} alive" if replies else "none answering"

        return await _in_thread(ping)

    async def reachable(self) -> str:
        def connect() -> str:
            with app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
            return ""

        answer = await asyncio.to_thread(connect)
        self._down_until = 0.0  # it answers again: publish at once, not after the back-off
        return answer


async def _in_thread(query: Any) -> str:
    try:
        return str(await asyncio.wait_for(asyncio.to_thread(query), BROKER_QUERY_TIMEOUT))
    except Exception as exc:  # broker down: say so in the report rather than fail it
        return f"unknown ({type(exc).__name__})"
