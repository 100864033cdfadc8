"""What the bot process asks of the task queue, as an interface: the pipeline and the admin
commands are handed an implementation (tasks/enqueue.py, Celery) and never import Celery."""

from __future__ import annotations

from typing import Any, Protocol

from bot.core.request import Reply, Request

Params = dict[str, Any]


class TaskQueue(Protocol):
    async def lookup(self, request: Request, params: Params, refresh: bool = False) -> None:
        """Queue a lookup; unless `refresh`, its reply goes to the user. Raises when the
        broker cannot take it (the caller tells the user)."""

    async def suggest(self, source: str, typed: str) -> None:
        """Have a worker fetch a suggestion source's values for `typed` into Redis. Raises
        when the broker cannot take it."""

    async def deliver(self, request: Request, reply: Reply) -> None:
        """Hand a reply the bot process could not send now to a worker, which waits and
        retries under the shared limits. Never raises: a loss is logged."""

    async def depth(self) -> str:
        """Messages waiting in the queue as digits, or why that is unknown."""
        ...

    async def workers(self) -> str:
        """How many workers answer a ping, in words."""
        ...

    async def reachable(self) -> str:
        """ "" when the broker answers, else the reason (for /readyz)."""
        ...
