"""Telegram, bot-process side: `TelegramAdapter` receives updates with python-telegram-bot
(long polling, or webhook POSTs served by the bot's HTTP server), turns them into Requests
and answers hits at once. Rendering rules are in render.py; workers send with sender.py.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.constants import ChatAction
from telegram.error import NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from bot.commands import registry
from bot.core import i18n, keys
from bot.core.i18n import t
from bot.core.request import Reply, Request
from bot.ops import metrics, sentry
from bot.pipeline import Outcome, Pipeline, parse_command
from bot.platforms.telegram.budget import buckets
from bot.platforms.telegram.render import (
    GROUP_TYPES,
    PARSE_MODE,
    PLATFORM,
    inline_answer,
    keyboard,
    render,
    reply_markup,
    reply_parameters,
)
from bot.platforms.telegram.transport import AiohttpRequest
from config import Settings

log = logging.getLogger(__name__)

AUTOMATIC_FORWARDS = 777000  # Telegram's id on posts a linked channel copies into its group
WEBHOOK_PATH = "/telegram/webhook"
# Telegram sends only the update types listed (inline queries also need /setinline at BotFather).
UPDATES = ["message", "inline_query", "callback_query"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@dataclass(frozen=True)
class Incoming:
    """What the bot reads from a text message, whichever way it was parsed."""

    update_id: int
    chat_id: int
    chat_type: str
    message_id: int
    text: str
    speaker: str  # see _speaker
    automatic: bool = False  # a channel post copied into its discussion group
    reply_to_user: str | None = None
    reply_to_bot: bool = False
    language: str = ""  # the sender's app language (language_code), "" when not given


@dataclass
class Exchange:
    """One webhook POST being answered: the method call its response may carry, and the
    requests to mark done once that response is written (not before: a crash in between
    would make Telegram's redelivery look like a duplicate, and the answer would be lost)."""

    call: dict[str, Any] | None = None
    handled: list[tuple[Request, Outcome]] = field(default_factory=list)


_exchange: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar("telegram_exchange", default=None)


def read_plain(data: dict[str, Any]) -> Incoming | None:
    """The few fields of a plain text message, straight from the update's JSON: building
    PTB's `Update` was the largest single cost of a cache hit (py-spy). Anything less plain
    — a reply, a message sent on behalf of a chat, a forward, an unexpected type — returns
    None and goes through PTB."""
    message = data.get("message")
    if len(data) != 2 or not isinstance(message, dict):
        return None
    if "reply_to_message" in message or "sender_chat" in message or "is_automatic_forward" in message:
        return None
    text, chat, sender = message.get("text"), message.get("chat"), message.get("from")
    if not isinstance(text, str) or not text or not isinstance(chat, dict) or not isinstance(sender, dict):
        return None
    chat_id, chat_type, user_id = chat.get("id"), chat.get("type"), sender.get("id")
    message_id = message.get("message_id")
    if type(chat_id) is not int or type(user_id) is not int or type(message_id) is not int:
        return None
    if not isinstance(chat_type, str) or user_id == AUTOMATIC_FORWARDS:
        return None
    language = sender.get("language_code")
    return Incoming(
        data["update_id"], chat_id, chat_type, message_id, text, str(user_id),
        language=language[:35] if isinstance(language, str) else "",
    )  # fmt: skip


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
        self._inline_url = f"{root}/bot{token}/answerInlineQuery"
        self._edit_url = f"{root}/bot{token}/editMessageText"
        self._press_url = f"{root}/bot{token}/answerCallbackQuery"
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
        self.app.add_handler(InlineQueryHandler(self._on_inline_query))
        self.app.add_handler(CallbackQueryHandler(self._on_press))
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
                allowed_updates=UPDATES,
                max_connections=40,
            )
        else:
            assert self.app.updater is not None
            await self.app.updater.start_polling(allowed_updates=UPDATES, timeout=10)
        await self.app.start()
        log.info("telegram: connected as @%s (%s mode)", self.username, self.settings.TELEGRAM_MODE)

    async def publish_commands(self) -> None:
        """The command menu users see, from the registry, described in each language we have
        (Telegram shows the one for the user's app language, else the default); admins' private
        chats also list the admin commands (authorization is still checked on every call)."""
        for language in i18n.LANGUAGES:
            menu = [BotCommand(c.name, i18n.translate(c.help, language)[:256]) for c in registry.commands()]
            await self.app.bot.set_my_commands(
                menu, language_code=None if language == i18n.SOURCE else language
            )
        users = [BotCommand(c.name, c.help[:256]) for c in registry.commands()]
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
        # Header bytes that are not UTF-8 arrive as surrogates: compare them as the bytes
        # they were, so any header but the exact secret is a 403, never an exception.
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, secret):
            return web.Response(status=403, text="forbidden")
        try:
            data = json.loads(await request.read())
        except (ValueError, RecursionError):  # not JSON, or nested deeper than json can read
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            return web.Response(status=400, text="bad update")
        exchange = Exchange()
        token = _exchange.set(exchange)
        try:
            if (incoming := read_plain(data)) is not None:
                await self._handle_plain(incoming)
            else:
                try:
                    update = Update.de_json(data, self.app.bot)
                except Exception:  # a shape PTB cannot read: the sender's fault
                    return web.Response(status=400, text="bad update")
                await self.app.process_update(update)
        finally:
            _exchange.reset(token)
        response = web.json_response(exchange.call) if exchange.call else web.Response(text="ok")
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionResetError:  # Telegram hung up first: it will redeliver
            log.info("telegram: the webhook's caller left before its answer")
            if exchange.call is not None:
                return response  # the answer went nowhere: unmarked, the redelivery answers
            # Otherwise the answer went (or will go) its own way: mark it done, or the
            # redelivery would answer a second time once the lease ran out.
        for handled, outcome in exchange.handled:
            self.pipeline.settle(handled, outcome)
        return response

    async def _handle_plain(self, incoming: Incoming) -> None:
        """The webhook's fast path: no PTB objects; errors reported as PTB's would be."""
        try:
            await self._handle(incoming)
        except Exception as exc:
            log.error("telegram: error while handling an update: %r", exc)
            sentry.capture(exc, platform=PLATFORM)

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or message.from_user is None:
            return
        if (incoming := incoming_from(update.update_id, message, self.app.bot.id)) is not None:
            await self._handle(incoming)

    async def _handle(self, incoming: Incoming) -> None:
        if incoming.automatic:
            return  # a channel's post copied into its discussion group: nobody asked
        chat_type = incoming.chat_type
        parsed = parse_command(incoming.text)
        if parsed.target and parsed.target.lower() != self.username:
            return  # "/fx@OtherBot": addressed to another bot in this group
        if not parsed.command and chat_type in GROUP_TYPES and not self._addressed(incoming):
            return  # group chatter that is not for us
        request = Request(
            platform=PLATFORM,
            chat=str(incoming.chat_id),
            user=incoming.speaker,
            request_id=f"{PLATFORM}:{incoming.update_id}",
            command=parsed.command,
            args=parsed.args,
            meta={
                "chat_type": chat_type,
                "message_id": incoming.message_id,
                "reply_to_user": incoming.reply_to_user,
            },
            received_at=time.time(),
            locale=incoming.language,
        )
        exchange = _exchange.get()

        async def answer(outcome: Outcome) -> None:
            if outcome.reply is not None and outcome.reply.private and chat_type != "private":
                await self._answer_privately(request, outcome.reply, outcome.language)
            elif outcome.reply is not None:
                if exchange is None or not self._in_response(exchange, request, outcome.reply):
                    await self._answer(request, outcome.reply)
            elif outcome.queued:
                # Immediate feedback while the worker looks it up ("typing…" for up to 5 s).
                # Sent once the lookup is queued, not alongside: overlapping the two cost a
                # miss ~2 ms (bench/miss.py), and an answer still takes a broker hop and an
                # upstream call.
                self._spawn(self.app.bot.send_chat_action(incoming.chat_id, ChatAction.TYPING))

        outbound = buckets(request, self.settings)
        settle = exchange is None  # else once the webhook's response is written
        outcome = await self.pipeline.handle(request, outbound=outbound, answer=answer, settle=settle)
        if exchange is not None:
            exchange.handled.append((request, outcome))

    async def _on_inline_query(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """`@bot fx 100 usd eur` typed in any chat: the lookup's answer as one article result.
        A hit is answered at once; a miss is queued, and answered by the worker when it lands
        within TELEGRAM_INLINE_WAIT, else by a "still looking" result (cache_time 0), so the
        next keystroke gets the cached answer. Same gate as messages, with its own rate."""
        query = update.inline_query
        if query is None:
            return
        parsed = parse_command("/" + query.query.strip().lstrip("/"))
        command = registry.get(parsed.command)
        lookup = command is not None and command.is_lookup
        request = Request(
            platform=PLATFORM,
            chat="",  # the answer goes back to the query, not to a chat
            user=str(query.from_user.id),
            request_id=f"{PLATFORM}:{update.update_id}",
            command=parsed.command if lookup else "",
            args=parsed.args if lookup else "",
            meta={"kind": "inline", "inline_query_id": query.id},
            received_at=time.time(),
            locale=str(query.from_user.language_code or "")[:35],
        )

        async def answer(outcome: Outcome) -> None:
            if outcome.queued:
                self._spawn(self._still_looking(query.id, outcome.language))
            if outcome.reply is None:
                return
            text, title = outcome.reply.shown, ""
            if outcome.reply.kind == "usage":
                title = i18n.render(t("How to use it"), outcome.language)
                if not lookup:  # not a lookup at all (or nothing typed yet): say what is
                    examples = "fx 100 usd eur · weather Paris · wiki Ada Lovelace"
                    text = i18n.render(
                        t(
                            "Type a lookup after @{bot}: {examples}",
                            bot=self.app.bot.username or "",
                            examples=examples,
                        ),
                        outcome.language,
                    )
            # Telegram may serve a fresh answer for as long as our cache would.
            cache_time = command.ttl() if command is not None and outcome.decision == "hit" else 0
            await self._answer_inline(
                request, inline_answer(query.id, text, cache_time, outcome.personal, title)
            )

        await self.pipeline.handle(request, answer=answer)

    async def _on_press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A Refresh or More button pressed: through the gate like a message (rate limit, bans);
        the answer is shown as it is while younger than REFRESH_FLOOR, else looked up again.
        The press is acknowledged once the gate has decided (milliseconds), with a short
        note; the message is edited in place — here for a cached answer, by the worker when
        the lookup lands."""
        press = update.callback_query
        if press is None:
            return
        message = press.message
        button = keys.pressed(press.data or "")
        if button is None or message is None or type(message.chat.id) is not int:
            await self._answer_press(press.id, "")  # not a button of ours: stop the spinner
            return
        cache_key, page = button
        request = Request(
            platform=PLATFORM,
            chat=str(message.chat.id),
            user=str(press.from_user.id),
            request_id=f"{PLATFORM}:{update.update_id}",
            command=cache_key.split(":")[1],
            args="",
            meta={
                "refresh": True,
                "cache_key": cache_key,
                "chat_type": message.chat.type,
                "edit_message_id": message.message_id,
                **({"page": page} if page else {}),  # "More": that page of the answer
            },
            received_at=time.time(),
            locale=str(press.from_user.language_code or "")[:35],
        )

        async def answer(outcome: Outcome) -> None:
            reply = outcome.reply or outcome.quiet
            note = ""
            if outcome.queued:
                note = i18n.render(t("Refreshing…"), outcome.language)
            elif outcome.decision in ("hit", "stale", "stale_open"):  # the cached answer: in place
                fresh = outcome.decision == "hit" and not page  # (a worker edits it if over budget)
                note = i18n.render(t("Up to date."), outcome.language) if fresh else ""
            elif reply is not None:  # too fast, expired, banned…: a note on the button
                note = reply.shown
            await self._answer_press(press.id, note)
            if outcome.reply is not None and outcome.reply.buttons:
                await self._answer(request, outcome.reply)

        # Not charged to the chat's outbound budget: the notes are no messages, and a worker
        # must never turn one into an edit of the answer ("too fast" in place of the rates).
        await self.pipeline.handle(request, answer=answer)

    async def _answer_press(self, press_id: str, note: str) -> None:
        """Stop the button's spinner, with a short note; one try (it is worth nothing later)."""
        try:
            await self.transport.post_form(
                self._press_url, {"callback_query_id": press_id, "text": note[:200]}
            )
        except NetworkError as exc:
            log.info("telegram: a button press not acknowledged: %s", exc)

    async def _still_looking(self, query_id: str, language: str) -> None:
        """The lookup did not land within TELEGRAM_INLINE_WAIT: say so, unless the worker
        answered first (a query takes one answer; whoever claims it answers)."""
        await asyncio.sleep(self.settings.TELEGRAM_INLINE_WAIT)  # a timer, not a poll
        if await self.pipeline.redis.set(keys.inline_answered(query_id), "bot", nx=True, ex=60):
            text = i18n.render(t("Still looking it up… type one more character to see the answer."), language)
            await self._answer_inline(None, inline_answer(query_id, text, 0, True))

    async def _answer_inline(self, request: Request | None, params: dict[str, str]) -> None:
        """One try: an inline answer is worth nothing a few seconds later (the user typed on)."""
        name = request.request_id if request else "-"
        try:
            status = await self.transport.post_form(self._inline_url, params)
        except NetworkError as exc:
            log.info("%s: inline answer not sent: %s", name, exc)
            return
        if status != 200:
            log.info("%s: telegram refused an inline answer (%s)", name, status)

    def _in_response(self, exchange: Exchange, request: Request, reply: Reply) -> bool:
        """Put the answer in the webhook's response if the settings allow it for this chat
        and it is one message: Telegram executes it without a request of ours, and without
        telling anyone how it went — so only where the budgets the gate charged make a
        refusal unlikely (a private chat by default: a group has 20 messages a minute, and a
        refused call there would vanish without a word)."""
        mode = self.settings.TELEGRAM_WEBHOOK_REPLIES
        group = request.meta.get("chat_type") in GROUP_TYPES
        if exchange.call is not None or mode == "off" or (mode == "private" and group):
            return False
        parts = render(reply.shown)
        if len(parts) != 1:
            return False
        call: dict[str, Any] = {
            "method": "sendMessage",
            "chat_id": int(request.chat),
            "text": parts[0],
            "parse_mode": PARSE_MODE,
        }
        if group:
            call["reply_parameters"] = reply_parameters(request.meta["message_id"])
        if reply.buttons:
            call["reply_markup"] = keyboard(reply.buttons)
        exchange.call = call
        return True

    def _addressed(self, incoming: Incoming) -> bool:
        return f"@{self.username}" in incoming.text.lower() or incoming.reply_to_bot

    async def _answer(self, request: Request, reply: Reply, chat: str = "") -> int:
        """Answer from the adapter (hits, usage, limits); returns Telegram's status. If Telegram
        pushes back, the reply is handed to the deliver task, which waits and retries under the
        shared limits. `chat`: another chat than the request's (an admin's private chat).

        This is the hot path of every cache hit, so it POSTs sendMessage itself on the
        transport's session: PTB's `send_message` spends more CPU on building the call and
        parsing the returned Message than the whole rest of the hit (measured with py-spy).
        """
        params: dict[str, str] = {"chat_id": chat or request.chat, "parse_mode": PARSE_MODE}
        if not chat and request.meta.get("chat_type") in GROUP_TYPES and request.meta.get("message_id"):
            # In a group, show which message this answers; in a private chat it is obvious.
            params["reply_parameters"] = json.dumps(reply_parameters(request.meta["message_id"]))
        editing = not chat and request.meta.get("edit_message_id")
        try:
            parts = render(reply.shown)
            for index, part in enumerate(parts):
                params["text"] = part
                if index == len(parts) - 1 and reply.buttons:
                    params["reply_markup"] = reply_markup(reply.buttons)
                url = self._send_url
                if index == 0 and editing:  # a Refresh press: the answer in place of the old one
                    url = self._edit_url
                    params = {**params, "message_id": str(request.meta["edit_message_id"])}
                    params.pop("reply_parameters", None)
                status = await self.transport.post_form(url, params)
                params.pop("message_id", None)
                if status == 400 and url == self._edit_url:
                    continue  # unchanged ("message is not modified"), or too old to edit
                if status == 403:
                    log.info("%s: the bot may not write to that chat; reply dropped", request.request_id)
                    return status
                if status == 429 or status >= 500:
                    if status == 429:
                        metrics.OUTBOUND_429.labels(PLATFORM).inc()
                    raise NetworkError(f"telegram {status}")
                if status != 200:
                    log.warning("%s: telegram refused the reply (%s)", request.request_id, status)
                    return status
        except (RetryAfter, NetworkError) as exc:
            if chat:
                return 503  # a private answer is not worth a worker's retries: say so in the group
            log.warning("%s: reply deferred to a worker: %s", request.request_id, exc)
            await self.pipeline.queue.deliver(request, reply)
        return 200

    async def _answer_privately(self, request: Request, reply: Reply, language: str) -> None:
        """An answer others in a group must not see goes to the asker's private chat; the
        group learns only where it went, or how to let the bot write there (a bot may not
        start a private chat: the user must have pressed Start once)."""
        status = await self._answer(request, reply, chat=request.user)
        if status == 200:
            note = t("Sent you the answer in a private message.")
        else:
            note = t(
                "I cannot write to you privately yet: open a chat with @{bot}, press Start, then send "
                "the command again.",
                bot=self.app.bot.username or "",
            )
        await self._answer(request, Reply(note, "notice").rendered(language))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieve, never raise

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram: error while handling an update: %r", context.error)
        if context.error is not None:
            sentry.capture(context.error, platform=PLATFORM)


def incoming_from(update_id: int, message: Any, bot_id: int) -> Incoming | None:
    """What the bot reads from a message PTB has parsed (read_plain's slow twin); None for
    what no Telegram sends (PTB keeps whatever types the JSON had: a text that is an object,
    a chat id that is a string)."""
    if not isinstance(message.text, str) or not message.text or type(message.chat.id) is not int:
        return None
    replied = message.reply_to_message
    return Incoming(
        update_id=update_id,
        chat_id=message.chat.id,
        chat_type=message.chat.type,
        message_id=message.message_id,
        text=message.text,
        speaker=_speaker(message),
        automatic=bool(message.is_automatic_forward) or message.from_user.id == AUTOMATIC_FORWARDS,
        # An admin may name a user by replying to their message (/ban in a group).
        reply_to_user=_speaker(replied) if replied is not None else None,
        reply_to_bot=replied is not None and replied.from_user is not None and replied.from_user.id == bot_id,
        language=str(message.from_user.language_code or "")[:35] if message.from_user is not None else "",
    )


def _speaker(message: Any) -> str:
    """Who speaks, for limits, bans and audit: the chat a message was sent on behalf of
    (a channel, or a group's anonymous admins: `sender_chat`) rather than the service account
    Telegram shows as its author for all of them (136817688, 1087968824)."""
    if message.sender_chat is not None:
        return str(message.sender_chat.id)
    return str(message.from_user.id) if message.from_user is not None else ""
