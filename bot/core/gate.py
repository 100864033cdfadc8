"""The gate: dedupe, bans, maintenance, per-user rate limit and cache, in one round trip."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.exceptions

from bot.core import keys
from bot.core.limits import Bucket
from bot.core.request import Request
from config import Settings

SCRIPT = (Path(__file__).with_name("gate.lua")).read_text()
SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()
LEASE_POLL = 0.1


@dataclass(frozen=True)
class Decision:
    outcome: str  # see gate.lua: hit, miss, coalesced, stale…, open, limited…, banned…, pass
    value: str = ""
    # The outbound budget had no room for an answer now: a worker sends it once there is.
    deferred: bool = False
    # An admin's limit override could not be used; the defaults applied.
    override_ignored: bool = False

    @property
    def retry_after(self) -> float:
        """For `limited…` and `open`: seconds until it is worth trying again."""
        return int(self.value) / 1000 if self.outcome in ("limited", "limited_silent", "open") else 0.0


class Gate:
    """Runs gate.lua with EVALSHA on an async redis-py client (loading it on NOSCRIPT).

    The message path is hot: constant arguments are encoded once, and the script answers
    with one string rather than an array, to keep the client's share of the round trip small.
    """

    def __init__(self, redis_client: Any, settings: Settings):
        self.redis = redis_client
        rate = settings.rate
        self._dedupe_ttl = settings.DEDUPE_TTL
        self._constants = (
            str(int(settings.DEDUPE_LEASE * 1000)).encode(),
            str(rate.interval_ms).encode(),
            str(settings.RATE_LIMIT_BURST).encode(),
        )
        self._coalesce_ttl = str(settings.COALESCE_TTL).encode()
        self._coalesce = "k" if settings.COALESCE else "-"

    async def check(
        self,
        request: Request,
        cache_key: str | None,
        is_admin: bool = False,
        breaker: str = "",
        outbound: tuple[Bucket, ...] = (),
    ) -> Decision:
        """`outbound`: the buckets an answer sent now by this process is charged to."""
        user = request.user_key
        seen = keys.seen(request.request_id)
        flags = ("a" if is_admin else "-") + ("c" if cache_key else "-") + self._coalesce
        lease, interval, burst = self._constants
        stats = keys.stats(int(time.time() // 60))
        if cache_key:
            lookup_keys = (keys.inflight(cache_key), keys.waiters(cache_key), keys.breaker(breaker or "none"))
            payload = json.dumps(request.to_dict(), separators=(",", ":"))
        else:
            lookup_keys, payload = (seen, seen, seen), ""
        args = (
            9 + len(outbound), seen, keys.ADMIN, keys.rate(user), cache_key or seen, stats, *lookup_keys,
            keys.rate_told(user), *(b.key for b in outbound),
            user, lease, interval, burst, flags, payload, self._coalesce_ttl,
            *(n for b in outbound for n in (b.interval_ms, b.burst)),
        )  # fmt: skip
        try:
            answer = await self.redis.evalsha(SHA, *args)
        except redis.exceptions.NoScriptError:
            answer = await self.redis.eval(SCRIPT, *args)  # first use on this server: loads it
        text = answer.decode() if isinstance(answer, bytes) else str(answer)
        head, _, value = text.partition(":")
        return Decision(head.rstrip("!?"), value, deferred="!" in head, override_ignored="?" in head)

    async def done(self, request_id: str) -> None:
        """The request's reply went out (or its lookup was queued): a redelivery is dropped."""
        await self.redis.set(keys.seen(request_id), "d", ex=self._dedupe_ttl)

    async def handled_elsewhere(self, request_id: str, lease: float) -> bool:
        """Another process holds this request id's lease: wait until it is done (True), or
        until the lease lapses because that process died (False: handle it here)."""
        deadline = time.monotonic() + lease + 1
        while time.monotonic() < deadline:
            state = await self.redis.get(keys.seen(request_id))
            if state is None:
                return False
            if state != b"h" and state != "h":
                return True
            await asyncio.sleep(LEASE_POLL)  # a redelivery during a crash: rare, and bounded
        return False

    async def release(self, cache_key: str) -> list[dict[str, Any]]:
        """End an in-flight lookup that will not run (its publish failed): the marker goes, and
        the requests coalesced behind it are returned to be told, in one transaction."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrange(keys.waiters(cache_key), 0, -1)
        pipe.delete(keys.waiters(cache_key), keys.inflight(cache_key))
        waiting, _ = await pipe.execute()
        return [json.loads(item) for item in waiting]
