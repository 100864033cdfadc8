"""The gate: dedupe, bans, maintenance, per-user rate limit and cache, in one round trip."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.exceptions

from bot.core import keys
from bot.core.limits import Bucket
from bot.core.request import Request
from config import Settings, parse_rate

log = logging.getLogger(__name__)
SCRIPT = (Path(__file__).with_name("gate.lua")).read_text()
SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()
LEASE_POLL = 0.1
# A done-mark waits at most this long for the next gate call to carry it, then goes alone.
SETTLE_DELAY = 0.05
# Done-marks no gate call carried, all in one command (a pipeline would be one per mark).
SETTLE = "for _, key in ipairs(KEYS) do redis.call('SET', key, 'd', 'EX', ARGV[1]) end"


@dataclass(frozen=True)
class Decision:
    outcome: str  # see gate.lua: hit, miss, coalesced, stale…, open, limited…, banned…, pass
    value: str = ""
    # The outbound budget had no room for an answer now: a worker sends it once there is.
    deferred: bool = False
    # An admin's limit override could not be used; the defaults applied.
    override_ignored: bool = False
    # The user's /lang choice ("" when they made none).
    language: str = ""

    @property
    def retry_after(self) -> float:
        """For `limited…` and `open`: seconds until it is worth trying again."""
        return int(self.value) / 1000 if self.outcome in ("limited", "limited_silent", "open") else 0.0


class Gate:
    """Runs gate.lua with EVALSHA on an async redis-py client (loading it on NOSCRIPT).

    The message path is hot: constant arguments are encoded once, and the script answers
    with one string rather than an array, to keep the client's share of the round trip small.
    One round trip per message, the done-mark included: a request id answered is marked done
    by the next gate call (any message's), or after SETTLE_DELAY when none comes.
    """

    def __init__(self, redis_client: Any, settings: Settings):
        self.redis = redis_client
        rate = settings.rate
        self._constants = (
            str(int(settings.DEDUPE_LEASE * 1000)).encode(),
            str(rate.interval_ms).encode(),
            str(settings.RATE_LIMIT_BURST).encode(),
        )
        inline = parse_rate(settings.INLINE_RATE_LIMIT)
        self._inline = (str(inline.interval_ms).encode(), str(settings.INLINE_RATE_LIMIT_BURST).encode())
        self._coalesce_ttl = str(settings.COALESCE_TTL).encode()
        self._coalesce = "k" if settings.COALESCE else "-"
        self._dedupe_ttl = str(settings.DEDUPE_TTL).encode()
        self._refresh_floor = str(int(settings.REFRESH_FLOOR * 1000)).encode()
        self._settled: list[str] = []  # markers of answered requests, not yet set "d"
        self._flush: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        self._settle = redis_client.register_script(SETTLE)

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
        if request.meta.get("refresh"):
            flags += "rp" if request.meta.get("page") else "r"
        lease, interval, burst = self._constants
        # Inline queries (one per keystroke while typing) have their own rate limit.
        lane = "inline" if request.meta.get("kind") == "inline" else ""
        if lane:
            interval, burst = self._inline
        stats = keys.stats(int(time.time() // 60))
        if cache_key:
            lookup_keys = (keys.inflight(cache_key), keys.waiters(cache_key), keys.breaker(breaker or "none"))
            payload = json.dumps(request.to_dict(), separators=(",", ":"))
        else:
            lookup_keys, payload = (seen, seen, seen), ""
        settled, self._settled = self._settled, []
        args = (
            10 + len(outbound) + len(settled), seen, keys.ADMIN, keys.rate(user, lane), cache_key or seen,
            stats, *lookup_keys, keys.rate_told(user, lane), keys.prefs(user), *(b.key for b in outbound),
            *settled,
            user, lease, interval, burst, flags, payload, self._coalesce_ttl, self._dedupe_ttl,
            self._refresh_floor,
            *(n for b in outbound for n in (b.interval_ms, b.burst)),
        )  # fmt: skip
        try:
            try:
                answer = await self.redis.evalsha(SHA, *args)
            except redis.exceptions.NoScriptError:
                answer = await self.redis.eval(SCRIPT, *args)  # first use on this server: loads it
        except BaseException:
            self._settled.extend(settled)  # not written: the next call or the timer tries again
            raise
        text = answer.decode() if isinstance(answer, bytes) else str(answer)
        head, _, value = text.partition(":")
        head, _, language = head.partition("=")
        return Decision(
            head.rstrip("!?"), value, deferred="!" in head, override_ignored="?" in head, language=language
        )

    def done(self, request_id: str) -> None:
        """The request's reply went out (or its lookup was queued): from now on a redelivery
        is dropped. Written by the next gate call, or within SETTLE_DELAY; until then a
        redelivery waits for it (the marker is "h")."""
        self._settled.append(keys.seen(request_id))
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(SETTLE_DELAY, self._flush_later)

    def _flush_later(self) -> None:
        self._flush = None
        if self._settled:
            task = asyncio.get_running_loop().create_task(self.flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def flush(self) -> None:
        """Write the done-marks no gate call has carried yet (also at shutdown)."""
        settled, self._settled = self._settled, []
        if not settled:
            return
        try:
            # Shielded: a shutdown that cancels it must not cut a Redis command in half
            # (redis-py then hangs closing that connection).
            await asyncio.shield(self._settle(keys=settled, args=[self._dedupe_ttl]))
        except (redis.exceptions.RedisError, OSError) as exc:  # the leases lapse instead
            log.warning("could not mark %d answered requests done: %r", len(settled), exc)

    async def close(self) -> None:
        """Before the client closes: nothing answered is left unmarked."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        await asyncio.gather(*self._flushing, return_exceptions=True)
        await self.flush()

    @staticmethod
    async def load_scripts(redis_client: Any) -> None:
        """Load both scripts into Redis, so that the first messages need no EVAL of them."""
        for script in (SCRIPT, SETTLE):
            await redis_client.script_load(script)

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
