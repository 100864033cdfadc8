"""A Telegram Bot API emulator speaking the real wire format, for PTB and our sender.

- `POST /bot<token>/<method>`: parameters form-encoded (nested values as JSON strings), or
  JSON, or multipart; answers `{"ok": true, "result": …}` or `{"ok": false, "error_code",
  "description", "parameters": {"retry_after"}}` with the matching HTTP status.
- getMe, deleteWebhook, setWebhook, getWebhookInfo, getUpdates (long poll honouring `offset`
  and `timeout`; 409 while a webhook is set), sendMessage, editMessageText, sendChatAction,
  setMyCommands, getMyCommands.
- With a webhook set, updates are POSTed to it with `X-Telegram-Bot-Api-Secret-Token`, at
  most setWebhook's `max_connections` (default 40) at a time, as Telegram does; a non-2xx answer makes the emulator deliver the same update again, as Telegram does. A 2xx
  answer may carry one method call (`{"method": "sendMessage", …}` as JSON or a form): it is
  executed like a request, its result and errors go nowhere, and `get*`, `setWebhook`,
  `deleteWebhook`, `close` and `logOut` are ignored there (as telegram-bot-api's
  WebhookActor does). Such calls are listed in `response_calls`, not in the request counts.
- Faults: `fail(method, status, retry_after=…, times=N)`; every sent message is recorded
  with its time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.emulators.loopback import LoopbackServer
from tests.waiting import Recorder

BOT_ID = 7000001
BOT_USERNAME = "LookupTestBot"


@dataclass
class Sent:
    t: float  # time.monotonic() when the emulator received it
    method: str
    chat_id: int
    text: str
    params: dict[str, Any]
    message_id: int
    via: str = "request"  # or "webhook response"


@dataclass
class Fault:
    status: int
    retry_after: int | None = None
    description: str = ""


@dataclass
class BotState:
    updates: deque[dict[str, Any]] = field(default_factory=deque)
    webhook_url: str = ""
    webhook_secret: str = ""
    # setWebhook's max_connections (1-100, default 40): Telegram never has more updates in
    # flight to a webhook than this.
    max_connections: int = 40
    commands: list[dict[str, Any]] = field(default_factory=list)
    scoped_commands: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    localized_commands: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[tuple[float, str]] = field(default_factory=list)


class TelegramEmulator(Recorder):
    def __init__(self, token: str, port: int = 0):
        self.token = token
        super().__init__()
        self.state = BotState()
        self.sent: list[Sent] = []
        self.faults: dict[str, deque[Fault]] = defaultdict(deque)
        self.chat_types: dict[int, str] = {}
        self.webhook_statuses: list[int] = []
        self.response_calls: list[tuple[str, int]] = []  # (method, HTTP status it got)
        self._calls_total: dict[str, int] = defaultdict(int)
        # Telegram's own limits, enforced when a test asks (enforce_limits): per chat GCRA.
        self.chat_limit: tuple[float, int] | None = None
        self._chat_tat: dict[int, float] = {}
        self.too_many = 0  # 429s answered because a limit was exceeded
        self.hangs: dict[str, float] = {}
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._new_update: asyncio.Event | None = None
        self._webhook_slots: asyncio.Semaphore | None = None  # max_connections, on the server loop
        self._tasks: set[asyncio.Future[None]] = set()
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        self.server = LoopbackServer(app, port)

    # -- test side ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> TelegramEmulator:
        self.server.start()
        self._new_update = asyncio.run_coroutine_threadsafe(self._make_event(), self.server.loop).result()
        return self

    async def _make_event(self) -> asyncio.Event:
        return asyncio.Event()

    def stop(self) -> None:
        self.server.stop()

    def reset(self) -> None:
        """Forget messages, faults and calls; keep what a running bot configured (webhook,
        commands)."""
        with self._lock:
            self.state.updates.clear()
            self.state.calls.clear()
            self.sent.clear()
            self.faults.clear()
            self.webhook_statuses.clear()
            self.response_calls.clear()
            self.chat_limit = None
            self._chat_tat.clear()
            self.too_many = 0

    def fail(self, method: str, status: int, retry_after: int | None = None, times: int = 1) -> None:
        description = {
            429: f"Too Many Requests: retry after {retry_after}",
            403: "Forbidden: bot was blocked by the user",
            400: "Bad Request: chat not found",  # the chat was deleted, or the bot left it
        }
        with self._lock:
            self.faults[method].extend(
                [Fault(status, retry_after, description.get(status, f"Error {status}"))] * times
            )

    def hang(self, method: str, seconds: float) -> None:
        """The next call of `method` gets no answer until its client goes away or `seconds`
        pass, then a 500: nothing is recorded as sent."""
        with self._lock:
            self.hangs[method] = seconds

    def enforce_limits(self, per_chat: tuple[float, int] | None) -> None:
        """Answer sendMessage with 429 (and retry_after) beyond `per_chat` = (messages per
        second, burst), as Telegram does; None turns it off."""
        with self._lock:
            self.chat_limit = per_chat
            self._chat_tat.clear()
            self.too_many = 0

    def _over_limit(self, chat_id: int) -> int:
        """0 when a message to the chat may go now (and it is counted), else seconds to wait."""
        with self._lock:
            if self.chat_limit is None:
                return 0
            rate, burst = self.chat_limit
            interval, now = 1 / rate, time.monotonic()
            tat = max(self._chat_tat.get(chat_id, now), now)
            if tat + interval - burst * interval > now:
                self.too_many += 1
                return max(1, int(tat + interval - burst * interval - now + 0.999))
            self._chat_tat[chat_id] = tat + interval
            return 0

    def calls_total(self, method: str) -> int:
        """Calls of `method` since the emulator started (reset() does not clear these)."""
        with self._lock:
            return self._calls_total[method]

    def calls(self, method: str) -> int:
        with self._lock:
            return sum(1 for _, m in self.state.calls if m == method)

    def messages(self, chat_id: int | None = None, method: str = "sendMessage") -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if s.method == method and (chat_id is None or s.chat_id == chat_id)]

    def message_update(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        chat_type: str = "private",
        reply_to_bot: bool = False,
        reply_to_user: int | None = None,
        update_id: int | None = None,
        sender_chat: dict[str, Any] | None = None,
        automatic_forward: bool = False,
        language_code: str | None = "en",
    ) -> dict[str, Any]:
        """A real-shaped update; commands carry the bot_command entity PTB looks for.
        `sender_chat`: sent on behalf of a chat (a channel, a group's anonymous admins);
        `user_id` is then Telegram's shared service account, as on the real API.
        `language_code`: the sender's app language (optional on the real API: None leaves it out)."""
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type}
            | ({"title": "Test group"} if chat_type != "private" else {"first_name": "Ann"}),
            "from": {"id": user_id, "is_bot": False, "first_name": "Ann"}
            | ({"language_code": language_code} if language_code else {}),
            "text": text,
        }
        if sender_chat is not None:
            message["sender_chat"] = sender_chat
        if automatic_forward:
            message["is_automatic_forward"] = True
        if text.startswith("/"):
            length = len(text.split()[0]) if text.split() else 1
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        if reply_to_bot or reply_to_user:
            author = (
                {"id": BOT_ID, "is_bot": True, "first_name": "Lookup", "username": BOT_USERNAME}
                if reply_to_bot
                else {"id": reply_to_user, "is_bot": False, "first_name": "Bob"}
            )
            message["reply_to_message"] = {
                "message_id": 1,
                "date": int(time.time()),
                "chat": message["chat"],
                "from": author,
                "text": "earlier message",
            }
        return {
            "update_id": update_id if update_id is not None else next(self._update_ids),
            "message": message,
        }

    def inline_update(self, user_id: int, query: str, language_code: str = "en") -> dict[str, Any]:
        """Someone typing `@bot QUERY` in any chat (Telegram sends one per pause in typing)."""
        return {
            "update_id": next(self._update_ids),
            "inline_query": {
                "id": str(next(self._message_ids) * 7919),
                "from": {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": language_code},
                "query": query[:256],  # Telegram's limit on an inline query's text
                "offset": "",
                "chat_type": "private",
            },
        }

    def press_update(self, chat_id: int, user_id: int, message: Sent, data: str) -> dict[str, Any]:
        """Someone pressing an inline keyboard button `data` under the bot's `message`."""
        return {
            "update_id": next(self._update_ids),
            "callback_query": {
                "id": str(next(self._message_ids) * 104729),
                "from": {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": "en"},
                "message": self._message(chat_id, message.text) | {"message_id": message.message_id},
                "chat_instance": "-1",
                "data": data,
            },
        }

    def inline_answers(self, query_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                s.params
                for s in self.sent
                if s.method == "answerInlineQuery" and s.params["inline_query_id"] == query_id
            ]

    def push(self, update: dict[str, Any]) -> None:
        """Deliver an update: to the webhook if one is set, else to getUpdates."""
        message = update.get("message") if isinstance(update, dict) else None
        if isinstance(message, dict) and isinstance(message.get("chat"), dict):
            self.chat_types[message["chat"].get("id")] = message["chat"].get("type")
        with self._lock:
            webhook = self.state.webhook_url
            if not webhook:
                self.state.updates.append(update)
        if webhook:
            asyncio.run_coroutine_threadsafe(self._deliver_webhook(update), self.server.loop)
        else:
            self.server.loop.call_soon_threadsafe(self._notify)

    def _notify(self) -> None:
        assert self._new_update is not None
        self._new_update.set()

    async def _deliver_webhook(self, update: dict[str, Any], attempts: int = 5) -> None:
        headers = {"X-Telegram-Bot-Api-Secret-Token": self.state.webhook_secret}
        if self._webhook_slots is None:
            self._webhook_slots = asyncio.Semaphore(self.state.max_connections)
        slots = self._webhook_slots
        async with aiohttp.ClientSession() as session:
            for attempt in range(attempts):
                try:
                    async with (
                        slots,
                        session.post(
                            self.state.webhook_url,
                            json=update,
                            headers=headers,
                            timeout=aiohttp.ClientTimeout(total=10),
                        ) as response,
                    ):
                        status = response.status
                        body = await response.read()
                        content_type = response.content_type
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                with self._changed:
                    self.webhook_statuses.append(status)
                    self._changed.notify_all()
                if 200 <= status < 300:
                    await self._run_response(body, content_type)
                    return
                await asyncio.sleep(0.2 * (attempt + 1))  # Telegram redelivers after a failure

    NOT_IN_RESPONSE = ("setWebhook", "deleteWebhook", "close", "logOut")

    async def _run_response(self, body: bytes, content_type: str) -> None:
        """Execute the method a webhook answer carries, if any; nobody learns how it went."""
        from urllib.parse import parse_qsl

        try:
            if content_type == "application/json":
                params = json.loads(body)
            elif content_type == "application/x-www-form-urlencoded":
                params = dict(parse_qsl(body.decode()))
            else:
                return
        except (ValueError, UnicodeDecodeError):
            return
        method = params.pop("method", None) if isinstance(params, dict) else None
        if not isinstance(method, str) or method.startswith("get") or method in self.NOT_IN_RESPONSE:
            return
        params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            response = self._error(404, "Not Found: method not found")
        elif method == "sendMessage":
            response = await handler(params, via="webhook response")
        else:
            response = await handler(params)
        with self._changed:
            self.response_calls.append((method, response.status))
            self._changed.notify_all()

    # -- server side -------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            body = await request.json()
            params.update(body if isinstance(body, dict) else {})
        elif request.can_read_body:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        return params

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _error(status: int, description: str, retry_after: int | None = None) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return web.json_response(body, status=status)

    @staticmethod
    async def _until_gone(request: web.Request, timeout: float) -> None:
        """Answer nothing until the client has gone (its process killed) or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            await asyncio.sleep(0.05)  # the poll interval: aiohttp has no disconnect event

    async def _dispatch(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await self._params(request)
        with self._changed:
            self.state.calls.append((time.monotonic(), method))
            self._calls_total[method] += 1
            fault = self.faults[method].popleft() if self.faults[method] else None
            hang = self.hangs.pop(method, 0.0)
            self._changed.notify_all()
        if hang:
            await self._until_gone(request, hang)
            return self._error(500, "Internal Server Error")
        if fault is not None:
            return self._error(fault.status, fault.description, fault.retry_after)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return self._error(404, "Not Found: method not found")
        return await handler(params)

    async def _m_getMe(self, params: dict[str, Any]) -> web.Response:
        return self._ok(
            {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "Lookup",
                "username": BOT_USERNAME,
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        )

    async def _m_deleteWebhook(self, params: dict[str, Any]) -> web.Response:
        with self._lock:
            self.state.webhook_url = ""
            if params.get("drop_pending_updates") == "true":
                self.state.updates.clear()
        return self._ok(True)

    async def _m_setWebhook(self, params: dict[str, Any]) -> web.Response:
        with self._changed:
            self.state.webhook_url = params.get("url", "")
            self.state.webhook_secret = params.get("secret_token", "")
            self.state.max_connections = min(100, max(1, int(params.get("max_connections") or 40)))
            self._webhook_slots = asyncio.Semaphore(self.state.max_connections)
            pending = list(self.state.updates)
            self.state.updates.clear()
            self._changed.notify_all()
        for update in pending:
            self._tasks.add(asyncio.ensure_future(self._deliver_webhook(update)))
        return self._ok(True)

    async def _m_getWebhookInfo(self, params: dict[str, Any]) -> web.Response:
        return self._ok(
            {"url": self.state.webhook_url, "has_custom_certificate": False, "pending_update_count": 0}
        )

    async def _m_getUpdates(self, params: dict[str, Any]) -> web.Response:
        if self.state.webhook_url:
            return self._error(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + timeout
        assert self._new_update is not None
        while True:
            with self._lock:
                # Updates below the offset are confirmed: Telegram forgets them.
                while self.state.updates and self._id(self.state.updates[0]) < offset:
                    self.state.updates.popleft()
                ready = [u for u in self.state.updates if self._id(u) >= offset][:limit]
            if ready:
                return self._ok(ready)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._ok([])
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), remaining)
            except TimeoutError:
                return self._ok([])

    @staticmethod
    def _id(update: Any) -> int:
        value = update.get("update_id") if isinstance(update, dict) else None
        return value if isinstance(value, int) else -1

    def _message(self, chat_id: int, text: str) -> dict[str, Any]:
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": self.chat_types.get(chat_id, "private")},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Lookup", "username": BOT_USERNAME},
            "text": text,
        }

    async def _m_sendMessage(self, params: dict[str, Any], via: str = "request") -> web.Response:
        try:
            chat_id = int(params["chat_id"])
            text = str(params["text"])
        except (KeyError, ValueError):
            return self._error(400, "Bad Request: chat_id and text are required")
        if not text.strip():
            return self._error(400, "Bad Request: message text is empty")
        visible = text
        if params.get("parse_mode") == "HTML":
            import html as html_lib
            import re

            if re.search(r"<(?!/?(b|i|u|s|code|pre|a)\b)[^>]*>", text):
                return self._error(400, "Bad Request: can't parse entities: unsupported start tag")
            visible = html_lib.unescape(re.sub(r"<[^>]+>", "", text))
        if len(visible) > 4096:
            return self._error(400, "Bad Request: message is too long")
        if problem := self._bad_markup(params):
            return self._error(400, problem)
        if wait := self._over_limit(chat_id):
            return self._error(429, f"Too Many Requests: retry after {wait}", wait)
        message = self._message(chat_id, visible)
        with self._changed:
            self.sent.append(
                Sent(time.monotonic(), "sendMessage", chat_id, visible, params, message["message_id"], via)
            )
            self._changed.notify_all()
        return self._ok(message)

    async def _m_answerInlineQuery(self, params: dict[str, Any]) -> web.Response:
        """One answer per query, at most 50 results with 1-64 byte ids (Bot API); a second
        answer is refused as the real server does."""
        query_id = str(params.get("inline_query_id", ""))
        try:
            results = json.loads(params.get("results", "[]"))
        except ValueError:
            return self._error(400, "Bad Request: can't parse inline query results JSON object")
        if not isinstance(results, list) or len(results) > 50:
            return self._error(400, "Bad Request: RESULTS_TOO_MUCH")
        for result in results:
            if (
                not 1 <= len(str(result.get("id", "")).encode()) <= 64
                or "input_message_content" not in result
            ):
                return self._error(400, "Bad Request: RESULT_ID_INVALID")
        with self._changed:
            if any(
                s.method == "answerInlineQuery" and s.params["inline_query_id"] == query_id for s in self.sent
            ):
                return self._error(
                    400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
                )
            recorded = {**params, "results": results}
            self.sent.append(Sent(time.monotonic(), "answerInlineQuery", 0, "", recorded, 0))
            self._changed.notify_all()
        return self._ok(True)

    async def _m_answerCallbackQuery(self, params: dict[str, Any]) -> web.Response:
        """One answer per press (the client's spinner stops); `text` at most 200 characters."""
        press = str(params.get("callback_query_id", ""))
        if len(str(params.get("text", ""))) > 200:
            return self._error(400, "Bad Request: MESSAGE_TOO_LONG")
        with self._changed:
            if any(
                s.method == "answerCallbackQuery" and s.params["callback_query_id"] == press
                for s in self.sent
            ):
                return self._error(
                    400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
                )
            self.sent.append(
                Sent(time.monotonic(), "answerCallbackQuery", 0, str(params.get("text", "")), params, 0)
            )
            self._changed.notify_all()
        return self._ok(True)

    def _shown(self, chat_id: int, message_id: int) -> str | None:
        """A message's text as the chat shows it now (after any edits); None if never sent."""
        shown = None
        for s in self.sent:
            if (
                s.chat_id == chat_id
                and s.message_id == message_id
                and s.method in ("sendMessage", "editMessageText")
            ):
                shown = s.text
        return shown

    @staticmethod
    def _bad_markup(params: dict[str, Any]) -> str:
        """Why an inline keyboard would be refused ("" when it is fine): callback_data 1-64 bytes."""
        markup = params.get("reply_markup")
        if markup is None:
            return ""
        rows = (json.loads(markup) if isinstance(markup, str) else markup).get("inline_keyboard", [])
        for button in (b for row in rows for b in row):
            if not 1 <= len(str(button.get("callback_data", "")).encode()) <= 64:
                return "Bad Request: BUTTON_DATA_INVALID"
        return ""

    async def _m_editMessageText(self, params: dict[str, Any]) -> web.Response:
        chat_id = int(params.get("chat_id", 0))
        if problem := self._bad_markup(params):
            return self._error(400, problem)
        text = str(params.get("text", ""))
        if params.get("parse_mode") == "HTML":
            import html as html_lib
            import re

            text = html_lib.unescape(re.sub(r"<[^>]+>", "", text))
        message = self._message(chat_id, text)
        message["message_id"] = int(params.get("message_id", 0))
        with self._lock:
            shown = self._shown(chat_id, message["message_id"])
        if shown is None:
            return self._error(400, "Bad Request: message to edit not found")
        if shown == message["text"]:
            return self._error(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message",
            )
        with self._changed:
            self.sent.append(
                Sent(
                    time.monotonic(),
                    "editMessageText",
                    chat_id,
                    message["text"],
                    params,
                    message["message_id"],
                )
            )
            self._changed.notify_all()
        return self._ok(message)

    async def _m_sendChatAction(self, params: dict[str, Any]) -> web.Response:
        with self._changed:
            chat_id = int(params.get("chat_id", 0))
            self.sent.append(
                Sent(time.monotonic(), "sendChatAction", chat_id, params.get("action", ""), params, 0)
            )
            self._changed.notify_all()
        return self._ok(True)

    async def _m_setMyCommands(self, params: dict[str, Any]) -> web.Response:
        commands = params.get("commands", "[]")
        commands = json.loads(commands) if isinstance(commands, str) else commands
        scope = params.get("scope")
        language = params.get("language_code")
        with self._lock:
            if language:  # the menu for users whose app is set to that language
                self.state.localized_commands[language] = commands
            elif scope:
                scope = json.loads(scope) if isinstance(scope, str) else scope
                self.state.scoped_commands[json.dumps(scope, sort_keys=True)] = commands
            else:
                self.state.commands = commands
        return self._ok(True)

    async def _m_getMyCommands(self, params: dict[str, Any]) -> web.Response:
        return self._ok(self.state.commands)

    async def _m_close(self, params: dict[str, Any]) -> web.Response:
        return self._ok(True)
