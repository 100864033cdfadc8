"""Telegram: everything about this platform lives here.

- `TelegramAdapter` receives updates with python-telegram-bot (long polling, or webhook POSTs
  served by the bot's HTTP server), turns them into Requests and answers hits at once.
- `render` escapes for the parse mode and splits at Telegram's 4096-character limit.
- `send` is the worker side: the Bot API over `requests`, with the outbound limits shared
  through Redis, 429 `retry_after` honoured, and at most one copy of each part of a reply.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import time
from typing import Any

import requests
from aiohttp import web
from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.constants import ChatAction
from telegram.error import NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

from bot import keys, metrics, monitoring, outbound, registry
from bot import text as text_rules
from bot.pipeline import Pipeline, celery_enqueue_delivery, parse_command
from bot.request import Reply, Request
from bot.senders import RetryLater, Undeliverable, http_session
from bot.telegram_transport import AiohttpRequest
from config import Settings, get_settings, parse_rate

log = logging.getLogger(__name__)

PLATFORM = "telegram"
MAX_TEXT = 4096  # Bot API: text of one message, counted after entity parsing
PARSE_MODE = "HTML"
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
GROUP_TYPES = ("group", "supergroup")


# --- rendering ----------------------------------------------------------------------------
def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    return text_rules.split_text(text, limit)


def render(text: str) -> list[str]:
    """Parts ready for `parse_mode=HTML`: split on the visible text, then escaped, so an
    `&amp;` still counts as the one character Telegram shows."""
    return [html.escape(part, quote=False) for part in split_text(text)]


# --- the adapter --------------------------------------------------------------------------
class TelegramAdapter:
    """connect (getMe, setMyCommands, webhook or polling) → listen (updates) → disconnect."""

    def __init__(self, settings: Settings, pipeline: Pipeline):
        self.settings = settings
        self.pipeline = pipeline
        token = settings.TELEGRAM_TOKEN.get_secret_value()
        root = settings.TELEGRAM_API_URL
        self.transport = AiohttpRequest(read_timeout=settings.REDIS_TIMEOUT + 5)
        self._send_url = f"{root}/bot{token}/sendMessage"
        builder = (
            ApplicationBuilder()
            .token(token)
            .base_url(f"{root}/bot")
            .base_file_url(f"{root}/file/bot")
            .request(self.transport)
            # getUpdates holds its connection for the long poll: give it its own pool.
            .get_updates_request(AiohttpRequest(read_timeout=settings.REDIS_TIMEOUT + 5, pool_size=2))
            # Without this PTB handles one update at a time and every await caps throughput.
            .concurrent_updates(256)
        )
        if settings.TELEGRAM_MODE == "webhook":
            builder = builder.updater(None)  # our own HTTP server receives the webhook
        self.app: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self.app.add_handler(MessageHandler(filters.TEXT, self._on_message))
        self.app.add_error_handler(self._on_error)
        self.username = ""
        self._background: set[asyncio.Task[Any]] = set()

    async def connect(self) -> None:
        await self.app.initialize()  # getMe
        self.username = (self.app.bot.username or "").lower()
        await self.publish_commands()
        if self.settings.TELEGRAM_MODE == "webhook":
            await self.app.bot.set_webhook(
                self.settings.TELEGRAM_WEBHOOK_URL,
                secret_token=self.settings.TELEGRAM_WEBHOOK_SECRET.get_secret_value(),
                allowed_updates=["message"],
                max_connections=40,
            )
        else:
            assert self.app.updater is not None
            await self.app.updater.start_polling(allowed_updates=["message"], timeout=10)
        await self.app.start()
        log.info("telegram: connected as @%s (%s mode)", self.username, self.settings.TELEGRAM_MODE)

    async def publish_commands(self) -> None:
        """The command menu users see, from the registry; admins' private chats also list the
        admin commands (authorization is still checked on every call)."""
        users = [BotCommand(c.name, c.help[:256]) for c in registry.commands()]
        await self.app.bot.set_my_commands(users)
        everything = users + [BotCommand(c.name, c.help[:256]) for c in registry.commands(admin=True)]
        for admin in sorted(self.settings.admins):
            platform, _, user = admin.partition(":")
            if platform != PLATFORM:
                continue
            try:
                await self.app.bot.set_my_commands(everything, scope=BotCommandScopeChat(int(user)))
            except TelegramError as exc:  # e.g. the admin has not started a chat with the bot yet
                log.warning("telegram: admin menu for %s not published: %s", admin, exc)

    def connected(self) -> bool:
        """For /readyz: the application runs and (in polling mode) its poller too."""
        polling = self.app.updater is None or self.app.updater.running
        return bool(self.app.running and polling)

    async def disconnect(self) -> None:
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    def routes(self) -> list[web.RouteDef]:
        return [web.post(WEBHOOK_PATH, self.webhook)] if self.settings.TELEGRAM_MODE == "webhook" else []

    async def webhook(self, request: web.Request) -> web.Response:
        """Telegram POSTs one update; anything not carrying our secret is refused unread."""
        secret = self.settings.TELEGRAM_WEBHOOK_SECRET.get_secret_value().encode()
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, secret):
            return web.Response(status=403, text="forbidden")
        try:
            data = json.loads(await request.read())
            update = Update.de_json(data, self.app.bot) if isinstance(data, dict) else None
        except Exception:  # malformed JSON or a shape PTB cannot read: the sender's fault
            update = None
        if update is None or not isinstance(data.get("update_id"), int):
            return web.Response(status=400, text="bad update")
        await self.app.process_update(update)
        return web.Response(text="ok")

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.text is None or message.from_user is None:
            return
        chat = message.chat
        parsed = parse_command(message.text)
        if parsed.target and parsed.target.lower() != self.username:
            return  # "/fx@OtherBot": addressed to another bot in this group
        if not parsed.command and chat.type in GROUP_TYPES and not self._addressed(message):
            return  # group chatter that is not for us
        request = Request(
            platform=PLATFORM,
            chat=str(chat.id),
            user=str(message.from_user.id),
            request_id=f"{PLATFORM}:{update.update_id}",
            command=parsed.command,
            args=parsed.args,
            meta={
                "chat_type": chat.type,
                "message_id": message.message_id,
                # An admin may name a user by replying to their message (/ban in a group).
                "reply_to_user": replied.from_user.id
                if (replied := message.reply_to_message) and replied.from_user
                else None,
            },
            received_at=time.time(),
        )
        outcome = await self.pipeline.handle(request)
        if outcome.reply is not None:
            await self._answer(request, outcome.reply)
        elif outcome.queued:
            # Immediate feedback while the worker looks it up ("typing…" for up to 5 s). Sent
            # once the lookup is queued, not alongside: overlapping the two cost a miss ~2 ms
            # (bench/miss.py), and an answer still takes a broker hop and an upstream call.
            self._spawn(self.app.bot.send_chat_action(chat.id, ChatAction.TYPING))

    def _addressed(self, message: Any) -> bool:
        mention = f"@{self.username}"
        replied = message.reply_to_message
        return mention in message.text.lower() or (
            replied is not None and replied.from_user is not None and replied.from_user.id == self.app.bot.id
        )

    async def _answer(self, request: Request, reply: Reply) -> None:
        """Answer from the adapter (hits, usage, limits). If Telegram pushes back, the reply
        is handed to the deliver task, which waits and retries under the shared limits.

        This is the hot path of every cache hit, so it POSTs sendMessage itself on the
        transport's session: PTB's `send_message` spends more CPU on building the call and
        parsing the returned Message than the whole rest of the hit (measured with py-spy).
        """
        params: dict[str, str] = {"chat_id": request.chat, "parse_mode": PARSE_MODE}
        if request.meta.get("chat_type") in GROUP_TYPES and request.meta.get("message_id"):
            # In a group, show which message this answers; in a private chat it is obvious.
            params["reply_parameters"] = json.dumps(
                {"message_id": request.meta["message_id"], "allow_sending_without_reply": True}
            )
        try:
            for part in render(reply.text):
                params["text"] = part
                status = await self.transport.post_form(self._send_url, params)
                if status == 403:
                    log.info("%s: user blocked the bot; reply dropped", request.request_id)
                    return
                if status == 429 or status >= 500:
                    if status == 429:
                        metrics.OUTBOUND_429.labels(PLATFORM).inc()
                    raise NetworkError(f"telegram {status}")
                if status != 200:
                    log.warning("%s: telegram refused the reply (%s)", request.request_id, status)
                    return
        except (RetryAfter, NetworkError) as exc:
            log.warning("%s: reply deferred to a worker: %s", request.request_id, exc)
            await celery_enqueue_delivery(request, reply)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieve, never raise

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: error while handling an update: %r", context.error)
        if context.error is not None:
            monitoring.capture(context.error, platform=PLATFORM)


# --- sending from workers ---------------------------------------------------------------------
def _buckets(request: Request, settings: Settings) -> list[outbound.Bucket]:
    """Telegram's limits: ~30 messages/s per bot, ~1/s per chat (short bursts tolerated),
    20/minute per group. Keys share the {telegram} hash tag (one Redis Cluster slot)."""
    global_rate = parse_rate(settings.TELEGRAM_GLOBAL_RATE)
    chat_rate = parse_rate(settings.TELEGRAM_CHAT_RATE)
    buckets = [
        outbound.Bucket("out:{telegram}:bot", global_rate.interval_ms, 1),
        outbound.Bucket(
            f"out:{{telegram}}:chat:{request.chat}", chat_rate.interval_ms, settings.TELEGRAM_CHAT_BURST
        ),
    ]
    if request.meta.get("chat_type") in GROUP_TYPES:
        group_rate = parse_rate(settings.TELEGRAM_GROUP_RATE)
        buckets.append(outbound.Bucket(f"out:{{telegram}}:group:{request.chat}", group_rate.interval_ms, 3))
    return buckets


def send(redis_client: Any, request: Request, reply: Reply) -> None:
    """Deliver `reply` as one or more messages; each part is sent at most once."""
    settings = get_settings()
    token = settings.TELEGRAM_TOKEN.get_secret_value()
    url = f"{settings.TELEGRAM_API_URL}/bot{token}/sendMessage"
    marker = keys.delivered(request.request_id)
    for index, part in enumerate(render(reply.text)):
        if redis_client.hexists(marker, index):
            continue  # sent by an earlier try of this task
        params: dict[str, Any] = {"chat_id": request.chat, "text": part, "parse_mode": PARSE_MODE}
        if index == 0 and request.meta.get("message_id"):
            params["reply_parameters"] = json.dumps(
                {"message_id": request.meta["message_id"], "allow_sending_without_reply": True}
            )
        _send_part(redis_client, url, params, settings, request)
        pipe = redis_client.pipeline()
        pipe.hset(marker, index, 1)
        pipe.expire(marker, settings.DEDUPE_TTL)
        pipe.execute()


def _send_part(
    redis_client: Any, url: str, params: dict[str, Any], settings: Settings, request: Request
) -> None:
    timeout = (settings.UPSTREAM_CONNECT_TIMEOUT, settings.UPSTREAM_READ_TIMEOUT)
    for _ in range(3):  # short 429 waits are served inline, longer ones by a task retry
        # Every attempt takes its slot from the shared limits, a retry after a 429 included.
        outbound.acquire(redis_client, _buckets(request, settings))
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
            if retry_after > outbound.MAX_INLINE_WAIT:
                raise RetryLater("telegram 429", after=retry_after)
            log.warning("%s: telegram 429, waiting %.1fs", request.request_id, retry_after)
            time.sleep(retry_after)  # Telegram said exactly how long to wait
            continue
        if response.status_code == 403:
            raise Undeliverable(f"telegram 403: {description}")
        if response.status_code >= 500:
            raise RetryLater(f"telegram {response.status_code}")
        if response.status_code == 400 and "parse" in description.lower() and "parse_mode" in params:
            params = {k: v for k, v in params.items() if k != "parse_mode"}  # send as plain text
            params["text"] = html.unescape(params["text"])
            continue
        raise Undeliverable(f"telegram {response.status_code}: {description}")
    raise RetryLater("telegram 429 again and again")
