"""What workers write down besides answers: the /stats counters of each lookup and
notification, dead letters,
and the shape of a result (a request and its reply) as tasks hand it on."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis
from celery.exceptions import SoftTimeLimitExceeded

from bot.core import keys
from bot.core.request import Reply, Request
from bot.ops import metrics
from tasks.runtime import worker_redis

log = logging.getLogger(__name__)


def result(request: dict[str, Any], reply: Reply) -> dict[str, Any]:
    return {"request": request, "reply": {"text": reply.text, "kind": reply.kind}}


def unpack(result: dict[str, Any]) -> tuple[Request, Reply]:
    reply = result["reply"]
    return Request.from_dict(result["request"]), Reply(reply["text"], reply.get("kind", "answer"))


def count(command: str, outcome: str, running: int = 0, pipe: Any = None) -> None:
    """One lookup result in this minute's /stats counters (`keys.lookup_stat`), and the
    running-lookups gauge moved by `running`, executing `pipe` (other book-keeping of the
    lookup's end) with them. Best effort: the reply never waits on it."""
    pipe = pipe if pipe is not None else worker_redis().pipeline(transaction=False)
    if running:
        pipe.incrby(keys.RUNNING, running)
    _add_stat(keys.lookup_stat(command, outcome), 1, pipe)


def notified(platform: str, sent: int = 1) -> None:
    """Subscription notifications sent, in this minute's /stats counters and the metric.
    Best effort, like `count`."""
    metrics.NOTIFICATIONS.labels(platform).inc(sent)
    _add_stat(keys.NOTIFIED_STAT, sent, worker_redis().pipeline(transaction=False))


def _add_stat(field: str, amount: int, pipe: Any) -> None:
    """`amount` more in this minute's /stats counter `field`, executing `pipe` with it; a
    failure is logged, never at the cost of a reply."""
    key = keys.stats(int(time.time() // 60))
    pipe.hincrby(key, field, amount)
    pipe.expire(key, keys.STATS_TTL)
    try:
        pipe.execute()
    except (redis.RedisError, SoftTimeLimitExceeded) as exc:
        log.warning("could not count %s for /stats: %s", field, type(exc).__name__)


def dead_letter(
    request: dict[str, Any], params: dict[str, Any], error: str, kind: str, attempts: int
) -> None:
    """Keep a request that failed for good, for /deadletters and /replay."""
    entry = {
        "id": request["request_id"],
        "request": request,
        "params": params,
        "error": error,
        "kind": kind,
        "attempts": attempts,
        "at": time.time(),
    }
    metrics.DEAD_LETTERS.labels(kind).inc()
    pipe = worker_redis().pipeline()
    pipe.lpush(keys.DEAD_LETTERS, json.dumps(entry))
    pipe.ltrim(keys.DEAD_LETTERS, 0, keys.DEAD_LETTERS_MAX - 1)
    pipe.execute()
