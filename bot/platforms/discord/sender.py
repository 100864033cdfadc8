"""Discord, worker side: the REST API over `requests` (no SDK) — edit the deferred
interaction response, or post to the channel — with 429 `retry_after` and per-route buckets
honoured, a global cap per bot shared through Redis, and each part of a reply sent once."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import requests

from bot.core import keys, limits
from bot.core.delivery import RetryLater, Undeliverable
from bot.core.request import Reply, Request
from bot.ops import metrics
from bot.platforms.base import http_session
from bot.platforms.discord.budget import global_bucket
from bot.platforms.discord.render import NO_MENTIONS, PLATFORM, components, split
from config import Settings, get_settings

log = logging.getLogger(__name__)

TOKEN_LIFETIME = 15 * 60  # an interaction token accepts followups and edits for 15 minutes
TOKEN_MARGIN = 30  # past this age, post to the channel rather than race the expiry


def send(redis_client: Any, request: Request, reply: Reply) -> None:
    """Edit the deferred interaction response, or post to the channel; each part once."""
    settings = get_settings()
    marker = keys.delivered(request.request_id)
    meta = request.meta
    age = time.time() - float(meta.get("created_at") or 0)
    use_webhook = (
        meta.get("kind") == "interaction" and meta.get("deferred") and age < TOKEN_LIFETIME - TOKEN_MARGIN
    )
    parts = split(reply.shown)
    for index, part in enumerate(parts):
        if redis_client.hexists(marker, index):
            continue  # sent by an earlier try of this task
        body: dict[str, Any] = {"content": part, "allowed_mentions": NO_MENTIONS}
        if index == len(parts) - 1 and reply.buttons:
            body["components"] = components(reply.buttons)
        sent = False
        if use_webhook:
            webhook = f"{settings.DISCORD_API_URL}/webhooks/{meta['application_id']}/{meta['token']}"
            if index == 0:
                sent = _request(
                    redis_client, settings, "PATCH", f"{webhook}/messages/@original", body, request
                )
            else:
                sent = _request(redis_client, settings, "POST", webhook, body, request)
        if not sent:
            # No live interaction token (a prefix command, or older than 15 minutes): post
            # the answer to the channel as a normal message.
            if meta.get("message_id"):
                body["message_reference"] = {"message_id": meta["message_id"], "fail_if_not_exists": False}
            url = f"{settings.DISCORD_API_URL}/channels/{request.chat}/messages"
            _request(redis_client, settings, "POST", url, body, request, auth=True)
        pipe = redis_client.pipeline(transaction=False)
        pipe.hset(marker, index, 1)
        pipe.expire(marker, settings.DEDUPE_TTL)
        pipe.execute()


def _route_key(url: str) -> str:
    """Discord buckets per route and major parameter; the webhook token is hashed so it
    never becomes a Redis key."""
    path = url.split("/api/", 1)[-1] if "/api/" in url else url
    return hashlib.sha1(path.split("?")[0].encode()).hexdigest()[:16]


def _request(
    redis_client: Any,
    settings: Settings,
    method: str,
    url: str,
    body: dict[str, Any],
    request: Request,
    auth: bool = False,
) -> bool:
    """True when sent; False when the interaction token is no longer valid (post to the
    channel instead). Raises RetryLater or Undeliverable otherwise."""
    headers = {"Content-Type": "application/json", "User-Agent": "DiscordBot (chatbot, 0.1)"}
    if auth:  # interaction webhooks carry their token in the URL, no Authorization
        headers["Authorization"] = f"Bot {settings.DISCORD_TOKEN.get_secret_value()}"
    route = keys.outbound(PLATFORM, "route", _route_key(url))
    timeout = (settings.UPSTREAM_CONNECT_TIMEOUT, settings.UPSTREAM_READ_TIMEOUT)
    for _ in range(3):  # short waits inline, longer ones as a task retry
        _wait_for_route(redis_client, route)
        limits.acquire(redis_client, [global_bucket(settings)])
        try:
            response = http_session().request(method, url, json=body, headers=headers, timeout=timeout)
        except requests.RequestException as exc:
            raise RetryLater(f"discord unreachable: {type(exc).__name__}") from None
        _remember_bucket(redis_client, route, response)
        status = response.status_code
        if 200 <= status < 300:
            return True
        if status == 429:
            metrics.OUTBOUND_429.labels(PLATFORM).inc()
            retry_after = _retry_after(response)
            if retry_after > limits.MAX_INLINE_WAIT:
                raise RetryLater("discord 429", after=retry_after)
            log.warning("%s: discord 429, waiting %.2fs", request.request_id, retry_after)
            time.sleep(retry_after)  # Discord said exactly how long to wait
            continue
        if not auth and status in (401, 404):
            return False  # unknown or expired interaction token
        if status >= 500:
            raise RetryLater(f"discord {status}")
        if status == 404:  # Unknown Channel: deleted, or the bot is no longer in its server
            raise Undeliverable("discord 404", why="gone")
        raise Undeliverable(f"discord {status}", why="blocked" if status == 403 else "refused")
    raise RetryLater("discord 429 again and again")


def _retry_after(response: requests.Response) -> float:
    try:
        return float(response.json().get("retry_after", 1))
    except (ValueError, AttributeError):
        return float(response.headers.get("Retry-After", 1))


def _remember_bucket(redis_client: Any, route: str, response: requests.Response) -> None:
    """An exhausted per-route bucket (X-RateLimit-Remaining: 0) blocks that route, in every
    process, until X-RateLimit-Reset-After has passed."""
    if response.headers.get("X-RateLimit-Remaining") == "0":
        try:
            reset_after = float(response.headers.get("X-RateLimit-Reset-After", "1"))
        except ValueError:
            reset_after = 1.0
        redis_client.set(route, 1, px=max(1, int(reset_after * 1000)))


def _wait_for_route(redis_client: Any, route: str) -> None:
    wait_ms = int(redis_client.pttl(route))
    if wait_ms <= 0:
        return
    if wait_ms / 1000 > limits.MAX_INLINE_WAIT:
        raise RetryLater("discord route bucket exhausted", after=wait_ms / 1000)
    time.sleep(wait_ms / 1000)  # the bucket's own reset time
