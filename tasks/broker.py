"""kombu's Redis transports with one synchronous client per channel instead of one per call.

kombu's `Channel.conn_or_acquire` builds a new `redis.Redis` for every ack, requeue and
queue query; with redis-py 8 building one costs more than the command it sends (its
response-callback table is filled per instance). py-spy on a worker answering 70 lookups/s:
~17% of the worker's CPU went to `Redis.__init__`, inside acks. A client shares its pool and
is safe to use from every thread, so one per channel does the same work. Used only when the
broker is Redis (tasks/app.py), directly (`Transport`) or through Sentinels
(`SentinelTransport`, whose pool follows the primary); RabbitMQ's transport does not have the
problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from kombu.transport import redis as kombu_redis


class _OneClient:
    _create_client: Any

    @cached_property
    def _shared_client(self) -> Any:
        return self._create_client()

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        yield client or self._shared_client


class Channel(_OneClient, kombu_redis.Channel):
    pass


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelChannel(_OneClient, kombu_redis.SentinelChannel):
    pass


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel
