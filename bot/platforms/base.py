"""What a platform provides: an `Adapter` in the bot process and a `send` function in workers.

A new platform is a package beside telegram/, discord/ and console/ with an `adapter.py`
implementing `Adapter` and a `sender.py` whose `send` matches `Sender`, listed once in
`bot/platforms/__init__.py`. Everything else — parsing commands, the gate, caching, queueing,
retries, outbound limits — is platform-neutral and comes with it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

import requests

from bot.core.request import Reply, Request
from bot.upstream.client import new_session

if TYPE_CHECKING:  # workers import this module too, and never need aiohttp
    from aiohttp import web


class Adapter(Protocol):
    """Receives a platform's messages in the bot process and answers what it can at once."""

    async def connect(self) -> None:
        """Called once at start-up: log in, publish the command menu, start receiving.
        Messages go to the pipeline from here on."""

    def routes(self) -> list[web.RouteDef]:
        """HTTP routes the bot's server should add (a webhook), before `connect`."""
        ...

    def connected(self) -> bool:
        """For /readyz: True while messages can arrive."""
        ...

    async def disconnect(self) -> None:
        """Called once at shutdown: stop receiving and close connections."""


class Sender(Protocol):
    """Sends a reply from a worker, plain HTTP, no SDK. Raises `RetryLater` or `Undeliverable`
    (bot/core/delivery.py); sends each part of a reply at most once per request id."""

    def __call__(self, redis_client: Any, request: Request, reply: Reply, /) -> None: ...


_local = threading.local()


def http_session() -> requests.Session:
    """One pooled HTTP session per worker thread for every platform's sender (created
    lazily, so each prefork child makes its own after the fork; requests does not promise a
    Session is safe to share between threads)."""
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = _local.session = new_session()
    return session
