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
from tasks.deliver import deliver, fan_out
from tasks.lookup import lookup
from tasks.records import result
from tasks.runtime import worker_redis

log = logging.getLogger(__name__)

TICK_BATCH = 500  # subscriptions claimed at once
TICK_BUDGET = 5.0  # seconds one tick goes on claiming batches; the next tick takes the rest
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

# One distinct lookup of a batch, atomic against the lookup's landing (tasks/landing.py caches
# the answer, drains the waiters and drops the marker in one transaction). KEYS: the cache
# entry, its in-flight marker, its waiters; ARGV: now (ms), the marker's TTL, then the
# requests owed an answer (JSON). Returns 2 when the entry is fresh by now (answer from it),
# 1 when this batch leads the lookup (marker set; everyone owed but the first waits), 0 when
# one is in flight already (everyone owed waits).
JOIN = """
local entry = redis.call('GET', KEYS[1])
if entry then
  local fresh_until = tonumber(string.match(entry, '^([0-9]+):'))
  if fresh_until and fresh_until > tonumber(ARGV[1]) then
    return 2
  end
end
local leads = redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2])
local first = leads and 4 or 3
for i = first, #ARGV do
  redis.call('RPUSH', KEYS[3], ARGV[i])
end
if #ARGV >= first then
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
return leads and 1 or 0
"""
JOINED_LEADS, JOINED_FRESH = 1, 2


@app.task(name="subscriptions_tick", ignore_result=True)
def subscriptions_tick() -> int:
    """Handle the subscriptions due now, TICK_BATCH at a time for at most TICK_BUDGET seconds
    (the next tick takes the rest); returns how many were handled."""
    client = worker_redis()
    handled, started = 0, time.monotonic()
    while time.monotonic() - started < TICK_BUDGET:
        now = time.time()
        lease = int((now + CLAIM_LEASE) * 1000)
        claimed = [
            c.decode()
            for c in client.eval(CLAIM, 1, keys.SUBSCRIPTIONS_DUE, int(now * 1000), lease, TICK_BATCH)
        ]
        if claimed:
            _Tick(client, now).run(claimed)
        handled += len(claimed)
        if len(claimed) < TICK_BATCH:
            break
    return handled


class _Tick:
    """One batch of due subscriptions, in a few round trips whatever its size: their hashes
    in one, the cached answers of their distinct lookups in one, the in-flight markers of those
    not fresh in one, every write in one."""

    def __init__(self, client: Any, now: float):
        self.client, self.now = client, now
        self.writes = client.pipeline(transaction=False)
        self.notes: list[dict[str, Any]] = []  # notifications whose answer is at hand

    def run(self, ids: list[str]) -> None:
        read = self.client.pipeline(transaction=False)
        for sub_id in ids:
            read.hgetall(keys.subscription(sub_id))
        due: list[tuple[str, dict[str, str], registry.Command, dict[str, Any], str]] = []
        for sub_id, raw in zip(ids, read.execute(), strict=True):
            sub = {k.decode(): v.decode() for k, v in raw.items()}
            command = registry.get(sub.get("command", ""))
            try:
                if not sub.get("state", "").startswith("active") or command is None or not command.is_lookup:
                    raise UsageError("gone")
                params = command.run_parser(sub["args"])
            except (UsageError, KeyError):  # removed meanwhile, paused, or no longer a lookup
                self.writes.zrem(keys.SUBSCRIPTIONS_DUE, sub_id)
                continue
            due.append((sub_id, sub, command, params, command.cache_key(params)))
        distinct = sorted({cache_key for *_, cache_key in due})
        read = self.client.pipeline(transaction=False)
        for cache_key in distinct:
            read.get(cache_key)
        entries = {}
        for cache_key, raw in zip(distinct, read.execute(), strict=True):
            fresh_until, entry = cache.decode(raw) if isinstance(raw, bytes) else (0.0, None)
            entries[cache_key] = entry if entry is not None and self.now < fresh_until else None
        missing: dict[str, list[tuple[Request, dict[str, Any], bool]]] = {}
        for sub_id, sub, command, params, cache_key in due:
            try:
                self._one(sub_id, sub, command, params, cache_key, entries[cache_key], missing)
            except Exception:  # one broken subscription must not stop the others
                log.exception("subscription %s could not be handled", sub_id)
                self._due(sub_id, self.now + get_settings().WATCH_INTERVAL)
        self._ask(missing)
        self.writes.execute()
        fan_out(self.notes)

    def _one(
        self,
        sub_id: str,
        sub: dict[str, str],
        command: registry.Command,
        params: dict[str, Any],
        cache_key: str,
        entry: dict[str, Any] | None,
        missing: dict[str, list[tuple[Request, dict[str, Any], bool]]],
    ) -> None:
        request = _request(sub_id, sub, self.now)
        if sub["kind"] == "daily":
            if entry is not None:
                self.notes.append(
                    result(request.to_dict(), Reply(entry["text"], entry.get("kind", "answer")))
                )
            else:
                missing.setdefault(cache_key, []).append((request, params, True))
            self._due(sub_id, next_daily(sub["at"], sub["tz"], self.now))
            return
        # A watch: the number in a fresh answer against the threshold; else refresh the answer.
        if entry is None:
            missing.setdefault(cache_key, []).append((request, params, False))
            self._due(sub_id, self.now + RECHECK)
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
                self.notes.append(result(request.to_dict(), Reply(alert, "alert")))
            self.writes.hset(keys.subscription(sub_id), "last", side)
        self._due(sub_id, self.now + get_settings().WATCH_INTERVAL)

    def _ask(self, missing: dict[str, list[tuple[Request, dict[str, Any], bool]]]) -> None:
        """One lookup per distinct cache key not fresh, as the gate does for messages: lead
        it where nobody does yet; everyone owed an answer waits in its waiters list — joined
        atomically (JOIN), and before the lookup is published, so that a lookup landing at
        any moment answers them all."""
        join = self.client.register_script(JOIN)
        joins = self.client.pipeline(transaction=False)
        now_ms, ttl = int(time.time() * 1000), get_settings().COALESCE_TTL
        owed: dict[str, list[tuple[Request, dict[str, Any]]]] = {}
        for cache_key, asking in missing.items():
            owed[cache_key] = [(request, params) for request, params, reply in asking if reply]
            waiting = [json.dumps(request.to_dict()) for request, _ in owed[cache_key]]
            keys_ = [cache_key, keys.inflight(cache_key), keys.waiters(cache_key)]
            join(keys=keys_, args=[now_ms, ttl, *waiting], client=joins)
        landed = []
        for (cache_key, asking), joined in zip(missing.items(), joins.execute(), strict=True):
            if joined == JOINED_FRESH:  # landed since this batch read the cache
                landed.append(cache_key)
            elif joined == JOINED_LEADS and owed[cache_key]:  # the first owed leads; it answers the rest
                request, params = owed[cache_key][0]
                chain(lookup.s(request.to_dict(), params), deliver.s()).apply_async()
            elif joined == JOINED_LEADS:  # only watches: a refresh fills the cache for their next look
                lookup.apply_async((asking[0][0].to_dict(), asking[0][1]), {"refresh": True})
        if landed:
            read = self.client.pipeline(transaction=False)
            for cache_key in landed:
                read.get(cache_key)
            for cache_key, raw in zip(landed, read.execute(), strict=True):
                _, entry = cache.decode(raw)
                for request, _ in owed[cache_key]:
                    self.notes.append(
                        result(request.to_dict(), Reply(entry["text"], entry.get("kind", "answer")))
                    )

    def _due(self, sub_id: str, when: float) -> None:
        """Next due at `when` (the time also names its next notification)."""
        self.writes.zadd(keys.SUBSCRIPTIONS_DUE, {sub_id: int(when * 1000)}, xx=True)
        self.writes.hset(keys.subscription(sub_id), "due", str(int(when * 1000)))


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


def _watched(text: Any, argument: str) -> Decimal | None:
    """The number a /watch compares: the answer's argument `argument` (a number())."""
    try:
        return Decimal(str(text["a"][argument]["num"]))
    except (KeyError, TypeError, InvalidOperation):
        return None
