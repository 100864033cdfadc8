"""Telegram, worker side: the Bot API's sendMessage over `requests` (no SDK), with the
outbound limits shared through Redis, 429 `retry_after` honoured, and at most one copy of
each part of a reply."""

from __future__ import annotations

import html
import json
import logging
import time
from typing import Any

import requests

from bot.core import keys, limits
from bot.core.delivery import RetryLater, Undeliverable
from bot.core.request import Reply, Request
from bot.ops import metrics
from bot.platforms.base import http_session
from bot.platforms.telegram.budget import buckets, paid_broadcast
from bot.platforms.telegram.render import (
    PARSE_MODE,
    PLATFORM,
    inline_answer,
    render,
    reply_markup,
    reply_parameters,
)
from config import Settings, get_settings

log = logging.getLogger(__name__)


def send(redis_client: Any, request: Request, reply: Reply) -> None:
    """Deliver `reply` as one or more messages; each part is sent at most once. An inline
    query's answer goes back to the query instead."""
    settings = get_settings()
    token = settings.TELEGRAM_TOKEN.get_secret_value()
    if request.meta.get("kind") == "inline":
        _answer_inline(
            redis_client, f"{settings.TELEGRAM_API_URL}/bot{token}/answerInlineQuery", request, reply
        )
        return
    url = f"{settings.TELEGRAM_API_URL}/bot{token}/sendMessage"
    marker = keys.delivered(request.request_id)
    parts = render(reply.shown)
    for index, part in enumerate(parts):
        if redis_client.hexists(marker, index):
            continue  # sent by an earlier try of this task
        params: dict[str, Any] = {"chat_id": request.chat, "text": part, "parse_mode": PARSE_MODE}
        part_url = url
        if index == 0 and request.meta.get("edit_message_id"):  # Refresh: the answer in place
            params["message_id"] = request.meta["edit_message_id"]
            part_url = f"{settings.TELEGRAM_API_URL}/bot{token}/editMessageText"
        elif index == 0 and request.meta.get("message_id"):
            params["reply_parameters"] = json.dumps(reply_parameters(request.meta["message_id"]))
        if index == len(parts) - 1 and reply.buttons:
            params["reply_markup"] = reply_markup(reply.buttons)
        if paid_broadcast(request, settings):
            params["allow_paid_broadcast"] = "true"
        _send_part(redis_client, part_url, params, settings, request)
        pipe = redis_client.pipeline(transaction=False)
        pipe.hset(marker, index, 1)
        pipe.expire(marker, settings.DEDUPE_TTL)
        pipe.execute()


def _answer_inline(redis_client: Any, url: str, request: Request, reply: Reply) -> None:
    """The lookup landed: answer the inline query with it, unless the bot process already
    said "still looking" (TELEGRAM_INLINE_WAIT passed; the next keystroke hits the cache).
    Not retried: a late answer is refused by Telegram and useless to the user."""
    query_id = str(request.meta["inline_query_id"])
    if not redis_client.set(keys.inline_answered(query_id), "worker", nx=True, ex=60):
        return
    settings = get_settings()
    params = inline_answer(query_id, reply.shown, 0, True)
    try:
        response = http_session().post(
            url, data=params, timeout=(settings.UPSTREAM_CONNECT_TIMEOUT, settings.UPSTREAM_READ_TIMEOUT)
        )
    except requests.RequestException as exc:
        raise Undeliverable(f"telegram unreachable for an inline answer: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise Undeliverable(f"telegram {response.status_code} to an inline answer")


def _send_part(
    redis_client: Any, url: str, params: dict[str, Any], settings: Settings, request: Request
) -> None:
    timeout = (settings.UPSTREAM_CONNECT_TIMEOUT, settings.UPSTREAM_READ_TIMEOUT)
    for _ in range(3):  # short 429 waits are served inline, longer ones by a task retry
        # Every attempt takes its slot from the shared limits, a retry after a 429 included.
        limits.acquire(redis_client, list(buckets(request, settings, worker=True)))
        try:
            response = http_session().post(url, data=params, timeout=timeout)
        except requests.RequestException as exc:
            raise RetryLater(f"telegram unreachable: {type(exc).__name__}") from None
        if response.status_code == 200:
            return
        try:
            body = response.json()
        except ValueError:
            body = {}
        description = str(body.get("description", ""))[:200]
        if response.status_code == 429:
            metrics.OUTBOUND_429.labels(PLATFORM).inc()
            retry_after = float((body.get("parameters") or {}).get("retry_after", 1))
            if retry_after > limits.MAX_INLINE_WAIT:
                raise RetryLater("telegram 429", after=retry_after)
            log.warning("%s: telegram 429, waiting %.1fs", request.request_id, retry_after)
            time.sleep(retry_after)  # Telegram said exactly how long to wait
            continue
        if response.status_code == 403:  # blocked by the user, kicked from the group
            raise Undeliverable(f"telegram 403: {description}", why="blocked")
        if response.status_code == 400 and "chat not found" in description:
            raise Undeliverable(f"telegram 400: {description}", why="gone")
        if response.status_code == 400 and "not modified" in description:
            return  # a Refresh that found the same answer: the message already shows it
        if response.status_code >= 500:
            raise RetryLater(f"telegram {response.status_code}")
        if response.status_code == 400 and "parse" in description.lower() and "parse_mode" in params:
            params = {k: v for k, v in params.items() if k != "parse_mode"}  # send as plain text
            params["text"] = html.unescape(params["text"])
            continue
        raise Undeliverable(f"telegram {response.status_code}: {description}")
    raise RetryLater("telegram 429 again and again")
