"""kombu's Redis transport with one synchronous client per channel instead of one per call.

kombu's `Channel.conn_or_acquire` builds a new `redis.Redis` for every ack, requeue and
queue query; with redis-py 8 building one costs more than the command it sends (its
response-callback table is filled per instance). py-spy on a worker answering 70 lookups/s:
~17% of the worker's CPU went to `Redis.__init__`, inside acks. A client shares its pool and
is safe to use from every thread, so one per channel does the same work. Used only when the
broker is Redis (tasks/app.py); RabbitMQ's transport does not have the problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    @cached_property
    def _shared_client(self) -> Any:
        return self._create_client()

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        yield client or self._shared_client


class Transport(kombu_redis.Transport):
    Channel = Channel
