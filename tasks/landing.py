"""Landing a lookup's outcome: cache it, answer every request coalesced behind it, and hand
back the leader's result. A failure lands a stale answer when the cache still has one."""

from __future__ import annotations

import json
from typing import Any

from bot.commands.registry import Command
from bot.core import cache, keys, phrases
from bot.core.i18n import Message
from bot.core.request import Reply
from tasks.deliver import answer_waiters
from tasks.records import result
from tasks.runtime import worker_redis


def finish(
    command: Command, request: dict[str, Any], params: dict[str, Any], reply: Reply, ttl: int, grace: int
) -> dict[str, Any]:
    """Cache the reply (fresh for `ttl`, servable stale for `grace` more), answer every
    request coalesced behind this lookup, and return the leader's result."""
    cache_key = command.cache_key(params)
    pipe = worker_redis().pipeline(transaction=True)
    if ttl > 0:
        pipe.set(cache_key, cache.encode(reply.text, reply.kind, ttl, params=params), ex=ttl + grace)
    # Cache first, in the same transaction as draining the waiters: a request that arrives
    # after this sees the cache; one that arrived before is in the list.
    pipe.lrange(keys.waiters(cache_key), 0, -1)
    pipe.delete(keys.waiters(cache_key), keys.inflight(cache_key))
    waiting = pipe.execute()[-2]
    answer_waiters([json.loads(w) for w in waiting], reply)
    return result(request, reply)


def finish_failure(
    command: Command, request: dict[str, Any], params: dict[str, Any], text: Message
) -> dict[str, Any]:
    """No fresh answer: a stale one still in the cache beats an error (stale-if-error)."""
    cached = worker_redis().get(command.cache_key(params))
    if isinstance(cached, bytes):
        _, body = cache.decode(cached)
        note = phrases.stale_note(float(body.get("at", 0)), phrases.not_answering(command.provider_name))
        reply = Reply([body["text"], note], body.get("kind", "answer"))
    else:
        reply = Reply(text, "error")
    return finish(command, request, params, reply, ttl=0, grace=0)
