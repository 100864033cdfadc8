"""Beat's subscription tick: /daily answers and /watch alerts (bot/commands/subscriptions.py
says what a subscription holds).

Every SUBSCRIPTION_TICK seconds `subscriptions_tick` claims the subscriptions that are due
(keys.SUBSCRIPTIONS_DUE, up to TICK_BATCH at a time; a claim is a lease: a tick that dies
leaves them due again a minute later) and, for each, asks the lookup through the cache and
the in-flight marker exactly as a message would: a fresh answer is used as it is; otherwise one
lookup runs per distinct cache key and everyone due for it waits in its waiters list (so a
tick makes one upstream call per distinct lookup). Every notification has its own request id,
`sub:<id>:<due ms>`: the senders' once-only markers make a tick that runs twice send nothing
twice. A /watch fires once per crossing of its threshold. A chat that refuses the bot pauses
the subscription (tasks/deliver.py).
"""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from celery import chain

from bot.commands import registry
from bot.commands.registry import UsageError
from bot.commands.subscriptions import next_daily
from bot.core import cache, keys
from bot.core.i18n import Message, number, t
from bot.core.request import Reply, Request
from config import get_settings
from tasks.app import app
from tasks.deliver import deliver, deliver_batch
from tasks.lookup import lookup
from tasks.records import result
from tasks.runtime import worker_redis

log = logging.getLogger(__name__)

TICK_BATCH = 500  # subscriptions claimed by one tick; the rest wait for the next
CLAIM_LEASE = 60.0  # seconds a claimed subscription stays claimed if its tick dies
RECHECK = 15.0  # seconds before a /watch whose answer was not fresh is looked at again

# Claims what is due: each id's score moves to the lease's end, so a tick that dies (or a
# second beat) leaves it alone until then. KEYS[1] the due set; ARGV now, lease end, batch.
CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id)
end
return due
"""


@app.task(name="subscriptions_tick", ignore_result=True)
def subscriptions_tick() -> int:
    """Handle the subscriptions due now; returns how many."""
    client = worker_redis()
    now = time.time()
    lease = int((now + CLAIM_LEASE) * 1000)
    claimed = client.eval(CLAIM, 1, keys.SUBSCRIPTIONS_DUE, int(now * 1000), lease, TICK_BATCH)
    if not claimed:
        return 0
    pipe = client.pipeline(transaction=False)
    for sub_id in claimed:
        pipe.hgetall(keys.subscription(sub_id.decode()))
    batch: list[dict[str, Any]] = []  # answers already fresh: sent together
    for raw_id, raw in zip(claimed, pipe.execute(), strict=True):
        sub_id = raw_id.decode()
        sub = {k.decode(): v.decode() for k, v in raw.items()}
        if not sub:
            client.zrem(keys.SUBSCRIPTIONS_DUE, sub_id)  # removed meanwhile
            continue
        try:
            _handle(client, sub_id, sub, now, batch)
        except Exception:  # one broken subscription must not stop the others
            log.exception("subscription %s could not be handled", sub_id)
            _due(client, sub_id, now + get_settings().WATCH_INTERVAL)
    for start in range(0, len(batch), 50):
        deliver_batch.delay(batch[start : start + 50])
    return len(claimed)


def _handle(client: Any, sub_id: str, sub: dict[str, str], now: float, batch: list[dict[str, Any]]) -> None:
    command = registry.get(sub["command"])
    if command is None or not command.is_lookup or not sub.get("state", "").startswith("active"):
        client.zrem(keys.SUBSCRIPTIONS_DUE, sub_id)  # paused, or the command is gone
        return
    try:
        params = command.run_parser(sub["args"])
    except UsageError:
        client.zrem(keys.SUBSCRIPTIONS_DUE, sub_id)
        return
    cache_key = command.cache_key(params)
    request = _request(sub_id, sub, now)
    raw = client.get(cache_key)
    fresh_until, entry = cache.decode(raw) if isinstance(raw, bytes) else (0.0, None)
    fresh = entry is not None and now < fresh_until
    if sub["kind"] == "daily":
        if fresh and entry is not None:
            batch.append(result(request.to_dict(), Reply(entry["text"], entry.get("kind", "answer"))))
        else:
            _ask(client, cache_key, request, params, reply=True)
        _due(client, sub_id, next_daily(sub["at"], sub["tz"], now))
        return
    # A watch: the number in a fresh answer against the threshold; else refresh the answer.
    if not fresh or entry is None:
        _ask(client, cache_key, request, params, reply=False)
        _due(client, sub_id, now + RECHECK)
        return
    value = _watched(entry["text"], command.watch)
    if value is not None:
        side = "above" if value > Decimal(sub["value"]) else "below"
        if side == sub["side"] and sub.get("last") != side:  # crossed (or so at the first check)
            alert: Message = [
                t("{what} is now {side} {value}:", what=f"/{sub['command']} {sub['args']}",
                  side=t(side), value=number(Decimal(sub["value"]))),
                entry["text"],
            ]  # fmt: skip
            batch.append(result(request.to_dict(), Reply(alert, "alert")))
        client.hset(keys.subscription(sub_id), "last", side)
    _due(client, sub_id, now + get_settings().WATCH_INTERVAL)


def _request(sub_id: str, sub: dict[str, str], now: float) -> Request:
    """The notification as a request: its own id per subscription and tick — the time it was
    due, which stays the same when a tick that died is run again."""
    user = sub["user"].partition(":")[2]
    return Request(
        platform=sub["platform"],
        chat=sub["chat"],
        user=user,
        request_id=f"sub:{sub_id}:{sub.get('due') or int(now * 1000)}",
        command=sub["command"],
        args=sub["args"],
        meta={**json.loads(sub.get("meta") or "{}"), "subscription": sub_id},
        received_at=now,
    )


def _ask(client: Any, cache_key: str, request: Request, params: dict[str, Any], reply: bool) -> None:
    """One lookup per distinct cache key: lead it, or (with a reply owed) wait behind the one
    in flight, as the gate does for messages."""
    if client.set(keys.inflight(cache_key), "1", nx=True, ex=get_settings().COALESCE_TTL):
        if reply:
            chain(lookup.s(request.to_dict(), params), deliver.s()).apply_async()
        else:
            lookup.apply_async((request.to_dict(), params), {"refresh": True})
    elif reply:
        pipe = client.pipeline(transaction=False)
        pipe.rpush(keys.waiters(cache_key), json.dumps(request.to_dict()))
        pipe.expire(keys.waiters(cache_key), get_settings().COALESCE_TTL)
        pipe.execute()


def _due(client: Any, sub_id: str, when: float) -> None:
    """Next due at `when` (the time also names its next notification)."""
    pipe = client.pipeline(transaction=True)
    pipe.zadd(keys.SUBSCRIPTIONS_DUE, {sub_id: int(when * 1000)}, xx=True)
    pipe.hset(keys.subscription(sub_id), "due", str(int(when * 1000)))
    pipe.execute()


def _watched(text: Any, argument: str) -> Decimal | None:
    """The number a /watch compares: the answer's argument `argument` (a number())."""
    try:
        return Decimal(str(text["a"][argument]["num"]))
    except (KeyError, TypeError, InvalidOperation):
        return None
