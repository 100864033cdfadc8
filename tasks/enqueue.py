"""The bot process' side of the task queue: `CeleryQueue` implements bot/core/queue.py.

Publishing is blocking kombu I/O: one thread keeps it off the event loop, and one producer
connection is never shared between threads. Broker queries (/stats, /health, /readyz,
/metrics) run in threads of their own with timeouts, so a broker outage never stalls a chat.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import chain

from bot.core.request import Reply, Request
from config import Settings
from tasks.app import app
from tasks.deliver import deliver
from tasks.lookup import lookup

log = logging.getLogger(__name__)

_publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish")
BROKER_QUERY_TIMEOUT = 5.0


class CeleryQueue:
    def __init__(self, settings: Settings):
        self.settings = settings

    async def lookup(self, request: Request, params: dict[str, Any], refresh: bool = False) -> None:
        """A miss: lookup then deliver. A refresh: the lookup alone (the user has an answer)."""
        if refresh:
            signature = lookup.s(request.to_dict(), params, refresh=True)
        else:
            signature = chain(lookup.s(request.to_dict(), params), deliver.s())
        await asyncio.get_running_loop().run_in_executor(_publisher, signature.apply_async)

    async def deliver(self, request: Request, reply: Reply) -> None:
        signature = deliver.s(
            {"request": request.to_dict(), "reply": {"text": reply.text, "kind": reply.kind}}
        )
        try:
            await asyncio.get_running_loop().run_in_executor(_publisher, signature.apply_async)
        except Exception as exc:
            log.error("%s: reply lost, broker unavailable: %r", request.request_id, exc)

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

        return await asyncio.to_thread(connect)


async def _in_thread(query: Any) -> str:
    try:
        return str(await asyncio.wait_for(asyncio.to_thread(query), BROKER_QUERY_TIMEOUT))
    except Exception as exc:  # broker down: say so in the report rather than fail it
        return f"unknown ({type(exc).__name__})"
