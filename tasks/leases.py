"""Leases on running lookups and reply batches, so that one whose worker was lost whole is
answered within seconds, not after the broker's visibility timeout.

The Redis broker gives an unacked message back only after BROKER_VISIBILITY_TIMEOUT (300 s):
that must stay above the longest countdown and time limit, so it cannot be cut to seconds.
Instead a lookup takes a lease when it starts (its arguments and an expiry, in Redis); a
heartbeat thread in the process running it keeps the lease alive (an expiry only ever moves
later: ZADD GT); a retry waiting for its countdown extends it past the countdown; the lease
is returned once the reply is out. When a worker machine goes away, its heartbeats stop; the
sweeper thread of any other worker's main process sees the lease expire and re-publishes the
lookup (the same request id, so senders' once-only markers hold). The broker's own late
redelivery finds the lookup `landed` and does nothing. A lookup run twice asks its upstream
twice; a user is never answered twice. A batch of replies (`deliver_batch`: coalesced
requests, a subscription tick's notifications) takes a lease the same way, under an id of
its own; re-published, it sends only what its senders have not marked sent.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

import redis

from bot.core import keys
from config import get_settings
from tasks.runtime import worker_redis

log = logging.getLogger(__name__)

_held: set[str] = set()  # request ids whose lookup runs in this process now
_lock = threading.Lock()
_heartbeat_pid = 0


def _lease_ms(extra: float = 0.0) -> int:
    return int((time.time() + get_settings().LOOKUP_LEASE + extra) * 1000)


def take(request: dict[str, Any], params: dict[str, Any]) -> None:
    """The lookup for `request` runs in this process from now on."""
    _take(str(request["request_id"]), {"request": request, "params": params})


def take_batch(lease: str, results: list[dict[str, Any]]) -> None:
    """The reply batch `lease` (its id) runs in this process from now on."""
    _take(lease, {"batch": results})


def _take(lease: str, leased: dict[str, Any]) -> None:
    pipe = worker_redis().pipeline(transaction=False)
    pipe.zadd(keys.LEASES, {lease: _lease_ms()})
    pipe.hset(keys.LEASED, lease, json.dumps(leased))
    pipe.execute()
    with _lock:
        _held.add(lease)
    _ensure_heartbeat()


def hold(request_id: str) -> None:
    """A step of a leased lookup (a fan-out source, the merge) runs in this process now."""
    with _lock:
        _held.add(request_id)
    _ensure_heartbeat()
    worker_redis().zadd(keys.LEASES, {request_id: _lease_ms()}, xx=True, gt=True)


def wait_for_retry(request_id: str, retry: Any) -> None:
    """A step raised Celery's Retry: keep the lease past its countdown (`retry.when`)."""
    wait(request_id, retry.when if isinstance(retry.when, int | float) else 0)


def release(request_id: str) -> None:
    """The step ends here; the lease stays in Redis for the next step."""
    with _lock:
        _held.discard(request_id)


def wait(request_id: str, countdown: float) -> None:
    """The lookup retries after `countdown`: nobody heartbeats it meanwhile."""
    with _lock:
        _held.discard(request_id)
    worker_redis().zadd(keys.LEASES, {request_id: _lease_ms(countdown)}, xx=True, gt=True)


def give_back(request_id: str, landed: bool, pipe: Any = None) -> None:
    """The lookup is over: its lease goes; `landed` (its reply is out) makes a late
    redelivery of the same message a no-op. With `pipe`, the commands join that pipeline
    (the caller's book-keeping, one round trip) and the caller executes it."""
    with _lock:
        _held.discard(request_id)
    batch = pipe if pipe is not None else worker_redis().pipeline(transaction=False)
    batch.zrem(keys.LEASES, request_id)
    batch.hdel(keys.LEASED, request_id)
    if landed:
        batch.set(keys.landed(request_id), 1, ex=get_settings().DEDUPE_TTL)
    if pipe is not None:
        return
    try:
        batch.execute()
    except redis.RedisError as exc:  # the lease expires; a re-run sends nothing twice
        log.warning("%s: could not give a lease back: %s", request_id, type(exc).__name__)


def landed(request_id: str) -> bool:
    return bool(worker_redis().exists(keys.landed(request_id)))


def _ensure_heartbeat() -> None:
    """One heartbeat thread per process (started lazily: a prefork child after its fork)."""
    global _heartbeat_pid
    if _heartbeat_pid == os.getpid():
        return
    _heartbeat_pid = os.getpid()
    threading.Thread(target=_beat, name="lease-heartbeat", daemon=True).start()


def _beat() -> None:
    every = get_settings().LOOKUP_LEASE / 3
    stop = threading.Event()
    while not stop.wait(every):
        with _lock:
            held = list(_held)
        if not held:
            continue
        try:
            worker_redis().zadd(keys.LEASES, dict.fromkeys(held, _lease_ms()), xx=True, gt=True)
        except redis.RedisError as exc:
            log.warning("lease heartbeat failed: %s", type(exc).__name__)


def sweep(republish: Any, limit: int = 100) -> int:
    """Re-publish the lookups and batches whose lease expired (their worker was lost):
    `republish(lease id, what was leased)`; returns how many. Any worker may sweep: removing
    the lease is the claim, so each is re-published once."""
    client = worker_redis()
    now = int(time.time() * 1000)
    republished = 0
    for raw in client.zrangebyscore(keys.LEASES, "-inf", now, start=0, num=limit):
        request_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        if not client.zrem(keys.LEASES, request_id):
            continue  # another sweeper claimed it
        leased = client.hget(keys.LEASED, request_id)
        client.hdel(keys.LEASED, request_id)
        if leased is None or landed(request_id):
            continue
        log.warning("%s: its worker was lost; re-publishing it", request_id)
        republish(request_id, json.loads(leased))
        republished += 1
    return republished


def start_sweeper(republish: Any) -> threading.Event:
    """The sweeper thread of a worker's main process; set the returned event to stop it."""
    stop = threading.Event()
    every = max(0.5, get_settings().LOOKUP_LEASE / 4)

    def run() -> None:
        while not stop.wait(every):
            try:
                sweep(republish)
            except Exception as exc:  # Redis or the broker away: try again next round
                log.warning("lease sweep failed: %s", type(exc).__name__)

    threading.Thread(target=run, name="lease-sweeper", daemon=True).start()
    return stop
