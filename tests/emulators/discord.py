"""A Discord REST + gateway emulator, enough for discord.py and our worker sender.

REST (`/api/v10`, JSON answered with Content-Type exactly `application/json`, as discord.py
needs): login (`/users/@me`, `/oauth2/applications/@me`), `/gateway/bot`, command sync
(`PUT /applications/{app}/commands`, `/applications/{app}/guilds/{g}/commands`), interaction
callbacks (3-second deadline enforced, one response per interaction), webhook followups and
`@original` edits (tokens die 15 minutes after the interaction's snowflake time), channel
messages and typing. Per-route buckets (5 requests per 2 s) send `X-RateLimit-*` headers and
answer 429 with `retry_after` when overrun; `fail(kind, 429, retry_after)` injects more.

Gateway (`/gateway`, TEXT frames, uncompressed): HELLO → HEARTBEAT/ACK, IDENTIFY → READY →
GUILD_CREATE for the guilds of that shard ((guild_id >> 22) % shard_count), RESUME →
RESUMED. Tests inject INTERACTION_CREATE and MESSAGE_CREATE into the shard that owns the guild.
Every callback, edit, followup and channel message is recorded with its time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.emulators.loopback import LoopbackServer
from tests.waiting import Recorder

API = "/api/v10"
APP_ID = 900000000000000001
BOT_USER = {"id": str(APP_ID), "username": "lookup", "discriminator": "0", "avatar": None, "bot": True}
DISCORD_EPOCH_MS = 1420070400000
TOKEN_LIFETIME = 15 * 60
INTERACTION_DEADLINE = 3.0
BUCKET_LIMIT, BUCKET_WINDOW = 5, 2.0


def snowflake(at: float | None = None, counter: itertools.count[int] = itertools.count(1)) -> int:  # noqa: B008
    ms = int((at if at is not None else time.time()) * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (next(counter) % 4096)


def snowflake_time(value: int) -> float:
    return ((value >> 22) + DISCORD_EPOCH_MS) / 1000


@dataclass
class Event:
    t: float  # time.monotonic()
    kind: str  # callback, deferred, edit, followup, channel_message, typing
    channel_id: int
    content: str
    body: dict[str, Any]
    interaction_id: int = 0
    ephemeral: bool = False


@dataclass
class Interaction:
    id: int
    token: str
    channel_id: int
    guild_id: int
    dispatched_at: float  # monotonic time of the INTERACTION_CREATE
    responded: bool = False
    type: int = 2  # 2 a slash command, 3 a component (button press), 4 an autocomplete


@dataclass
class Shard:
    ws: web.WebSocketResponse
    shard_id: int = 0
    shard_count: int = 1
    seq: int = 0
    session_id: str = ""
    identified: asyncio.Event = field(default_factory=asyncio.Event)


class DiscordEmulator(Recorder):
    def __init__(self, token: str, guilds: list[int] | None = None, port: int = 0):
        self.token = token
        # Two guilds on different shards of a 2-shard bot: shard = (id >> 22) % count.
        self.guilds = guilds or [1_000_000 << 22, 1_000_001 << 22]
        self.channels = {g: g + 1 for g in self.guilds}  # one text channel per guild
        super().__init__()
        self.events: list[Event] = []
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.interactions: dict[int, Interaction] = {}
        self.by_token: dict[str, Interaction] = {}
        self.faults: dict[str, deque[tuple[int, float]]] = defaultdict(deque)
        self.bucket_overruns = 0
        self.served_429: list[tuple[float, str]] = []
        self.gone_channels: set[int] = set()
        self.callback_drops = 0
        self.shards: list[Shard] = []
        self.identifies: list[tuple[int, int]] = []
        self._buckets: dict[str, deque[float]] = defaultdict(deque)
        self._ids = itertools.count(1)
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/", self._gateway)
        app.router.add_route("*", API + "/{tail:.*}", self._rest)
        self.server = LoopbackServer(app, port)

    # -- test side ---------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"{self.server.url}{API}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/gateway"

    def start(self) -> DiscordEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        for shard in list(self.shards):
            asyncio.run_coroutine_threadsafe(shard.ws.close(), self.server.loop)
        self.server.stop()

    def reset(self) -> None:
        with self._lock:
            self.events.clear()
            self.faults.clear()
            self.served_429.clear()
            self.callback_drops = 0
            self.bucket_overruns = 0
            self._buckets.clear()

    def fail(self, kind: str, status: int, retry_after: float = 0.5, times: int = 1) -> None:
        """kind: callback, edit, followup, channel_message."""
        with self._lock:
            self.faults[kind].extend([(status, retry_after)] * times)

    def drop_connection(self, times: int = 1) -> None:
        """The next interaction callbacks get no answer: the connection is closed as the
        request arrives (a connection reset on the way), and nothing is recorded."""
        with self._lock:
            self.callback_drops += times

    def delete_channel(self, channel_id: int) -> None:
        """The channel is gone (deleted, or the bot removed from its server): posting to it
        gets Discord's 404 Unknown Channel."""
        with self._lock:
            self.gone_channels.add(channel_id)

    def shard_of(self, guild_id: int, shard_count: int) -> int:
        return (guild_id >> 22) % shard_count

    def connected_shards(self) -> list[int]:
        with self._lock:
            return sorted(s.shard_id for s in self.shards if s.identified.is_set() and not s.ws.closed)

    def new_channel(self) -> int:
        return snowflake()

    def register_interaction(self, guild_id: int, channel_id: int, age: float = 0.0) -> Interaction:
        """An interaction the emulator knows (its token works) without dispatching it."""
        iid = snowflake(time.time() - age)
        record = Interaction(iid, f"itoken-{iid}-{next(self._ids)}", channel_id, guild_id, time.monotonic())
        with self._lock:
            self.interactions[iid] = record
            self.by_token[record.token] = record
        return record

    def interaction(
        self,
        guild_id: int,
        user_id: int,
        name: str,
        options: list[dict[str, Any]],
        age: float = 0.0,
        channel_id: int | None = None,
        again: Interaction | None = None,
        locale: str = "en-US",
        interaction_type: int = 2,
        component: tuple[str, Event] | None = None,
    ) -> Interaction:
        """Dispatch INTERACTION_CREATE (a slash command) to the shard that owns the guild.
        `age` back-dates the interaction's snowflake (its token then dies sooner); `again`
        redelivers an earlier interaction with the same id and token; `locale`: the user's
        Discord language, as every interaction carries it. `component`: (custom_id, the event
        that showed it) makes it a button press (type 3) on that message."""
        channel_id = channel_id or self.channels[guild_id]
        record = again or self.register_interaction(guild_id, channel_id, age)
        with self._lock:
            record.dispatched_at = time.monotonic()
            record.type = interaction_type
        iid, itoken = record.id, record.token
        user = {"id": str(user_id), "username": f"user{user_id}", "discriminator": "0", "avatar": None}
        payload = {
            "id": str(iid),
            "application_id": str(APP_ID),
            "type": interaction_type,
            "token": itoken,
            "version": 1,
            "guild_id": str(guild_id),
            "channel_id": str(channel_id),
            "channel": {
                "id": str(channel_id),
                "type": 0,
                "guild_id": str(guild_id),
                "name": "general",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
            },
            "member": {
                "user": user,
                "roles": [],
                "joined_at": "2026-01-01T00:00:00+00:00",
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": "1024",
            },
            "data": {
                "id": str(snowflake()),
                "name": name,
                "type": 1,
                "options": options,
                "guild_id": str(guild_id),
            },
            **(
                {
                    "data": {"custom_id": component[0], "component_type": 2},
                    "message": self._message_payload(snowflake(), channel_id, component[1].content)
                    | {"components": component[1].body.get("components", [])},
                }
                if component
                else {}
            ),
            "attachment_size_limit": 8388608,
            "app_permissions": "1024",
            "locale": locale,
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0,
        }
        self._dispatch_to_guild(guild_id, "INTERACTION_CREATE", payload)
        return record

    def message(self, guild_id: int, user_id: int, content: str) -> int:
        """Dispatch MESSAGE_CREATE (for prefix commands)."""
        channel_id = self.channels[guild_id]
        mid = snowflake()
        author = {"id": str(user_id), "username": f"user{user_id}", "discriminator": "0", "avatar": None}
        payload = self._message_payload(mid, channel_id, content, author) | {"guild_id": str(guild_id)}
        self._dispatch_to_guild(guild_id, "MESSAGE_CREATE", payload)
        return mid

    def texts(self, channel_id: int) -> list[Event]:
        """What a user in the channel sees: responses, edits, followups, channel messages."""
        kinds = ("callback", "edit", "followup", "channel_message")
        with self._lock:
            return [e for e in self.events if e.channel_id == channel_id and e.kind in kinds]

    def of_kind(self, kind: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.kind == kind]

    # -- gateway ---------------------------------------------------------------------------------
    def _dispatch_to_guild(self, guild_id: int, event: str, payload: dict[str, Any]) -> None:
        async def send() -> None:
            for shard in list(self.shards):
                if not shard.identified.is_set() or shard.ws.closed:
                    continue
                if self.shard_of(guild_id, shard.shard_count) == shard.shard_id:
                    await self._send_dispatch(shard, event, payload)
                    return
            raise RuntimeError(f"no connected shard owns guild {guild_id}")

        asyncio.run_coroutine_threadsafe(send(), self.server.loop).result(5)

    async def _send_dispatch(self, shard: Shard, event: str, payload: dict[str, Any]) -> None:
        shard.seq += 1
        await shard.ws.send_str(json.dumps({"op": 0, "t": event, "s": shard.seq, "d": payload}))

    def _guild_payload(self, guild_id: int) -> dict[str, Any]:
        channel_id = self.channels[guild_id]
        return {
            "id": str(guild_id),
            "name": f"Guild {guild_id}",
            "owner_id": "1",
            "member_count": 2,
            "unavailable": False,
            "large": False,
            "joined_at": "2026-01-01T00:00:00+00:00",
            "features": [],
            "roles": [{"id": str(guild_id), "name": "@everyone", "permissions": "1024", "position": 0,
                       "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}],
            "emojis": [],
            "stickers": [],
            "channels": [{"id": str(channel_id), "type": 0, "guild_id": str(guild_id), "name": "general",
                          "position": 0, "permission_overwrites": [], "nsfw": False, "parent_id": None}],
            "threads": [],
            "members": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }  # fmt: skip

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        shard = Shard(ws)
        with self._lock:
            self.shards.append(shard)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                op = data.get("op")
                if op == 1:
                    await ws.send_str(json.dumps({"op": 11}))
                elif op == 2:
                    await self._identify(shard, data["d"])
                elif op == 6:
                    shard.session_id = data["d"].get("session_id", "")
                    shard.seq = int(data["d"].get("seq") or shard.seq)
                    shard.identified.set()
                    await self._send_dispatch(shard, "RESUMED", {})
        finally:
            with self._changed:
                if shard in self.shards:
                    self.shards.remove(shard)
                self._changed.notify_all()
        return ws

    async def _identify(self, shard: Shard, d: dict[str, Any]) -> None:
        if d.get("token") != self.token:
            await shard.ws.close(code=4004, message=b"Authentication failed.")
            return
        shard.shard_id, shard.shard_count = d.get("shard") or [0, 1]
        shard.session_id = f"session-{next(self._ids)}"
        mine = [g for g in self.guilds if self.shard_of(g, shard.shard_count) == shard.shard_id]
        ready = {
            "v": 10,
            "user": BOT_USER,
            "guilds": [{"id": str(g), "unavailable": True} for g in mine],
            "session_id": shard.session_id,
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(APP_ID), "flags": 0},
            "shard": [shard.shard_id, shard.shard_count],
        }
        await self._send_dispatch(shard, "READY", ready)
        for guild in mine:
            await self._send_dispatch(shard, "GUILD_CREATE", self._guild_payload(guild))
        with self._changed:
            self.identifies.append((shard.shard_id, shard.shard_count))
            shard.identified.set()
            self._changed.notify_all()

    # -- REST ----------------------------------------------------------------------------------------
    @staticmethod
    def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        # Exactly "application/json": discord.py parses nothing else as JSON.
        return web.Response(
            body=json.dumps(body).encode(),
            status=status,
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    def _message_payload(
        self, mid: int, channel_id: int, content: str, author: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {
            "id": str(mid),
            "channel_id": str(channel_id),
            "author": author or BOT_USER,
            "content": content,
            "timestamp": "2026-11-29T00:00:00+00:00",
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
            "components": [],
        }

    @staticmethod
    def _bad_components(rows: Any) -> str:
        """Why Discord would refuse these message components ("" when fine): at most 5 action
        rows of at most 5 buttons, custom_id 1-100 characters, label at most 80."""
        if not rows:
            return ""
        buttons = [b for row in rows for b in row.get("components", [])]
        if len(rows) > 5 or any(len(row.get("components", [])) > 5 for row in rows):
            return "Invalid Form Body: too many components"
        for button in buttons:
            if (
                not 1 <= len(str(button.get("custom_id", ""))) <= 100
                or len(str(button.get("label", ""))) > 80
            ):
                return "Invalid Form Body: custom_id or label"
        return ""

    def _record(self, event: Event) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def _rate_limit(self, route: str) -> web.Response | None:
        """A per-route bucket: BUCKET_LIMIT requests per BUCKET_WINDOW seconds."""
        now = time.monotonic()
        with self._lock:
            hits = self._buckets[route]
            while hits and now - hits[0] >= BUCKET_WINDOW:
                hits.popleft()
            if len(hits) >= BUCKET_LIMIT:
                self.bucket_overruns += 1
                retry = BUCKET_WINDOW - (now - hits[0])
                self.served_429.append((now, route))
                return self._json(
                    {
                        "message": "You are being rate limited.",
                        "retry_after": round(retry, 3),
                        "global": False,
                    },
                    429,
                    self._bucket_headers(route, 0, retry),
                )
            hits.append(now)
        return None

    def _bucket_headers(self, route: str, remaining: int, reset_after: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(BUCKET_LIMIT),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": route.replace("/", "_")[:40],
        }

    def _limited_ok(self, route: str, body: Any) -> web.Response:
        with self._lock:
            hits = self._buckets[route]
            remaining = max(0, BUCKET_LIMIT - len(hits))
            reset = BUCKET_WINDOW - (time.monotonic() - hits[0]) if hits else BUCKET_WINDOW
        return self._json(body, 200, self._bucket_headers(route, remaining, max(0.0, reset)))

    def _fault(self, kind: str) -> web.Response | None:
        with self._lock:
            if not self.faults[kind]:
                return None
            status, retry_after = self.faults[kind].popleft()
            self.served_429.append((time.monotonic(), kind))
        if status == 429:
            return self._json(
                {"message": "You are being rate limited.", "retry_after": retry_after, "global": False},
                429,
                {"Retry-After": f"{retry_after:g}", "X-RateLimit-Remaining": "0",
                 "X-RateLimit-Reset-After": f"{retry_after:g}"},
            )  # fmt: skip
        return self._json({"message": f"emulated {status}", "code": 0}, status)

    async def _rest(self, request: web.Request) -> web.Response:
        parts = request.match_info["tail"].strip("/").split("/")
        method = request.method
        body: Any = {}
        if request.can_read_body:
            try:
                body = await request.json()
            except (ValueError, json.JSONDecodeError):
                body = {}
        authorized = request.headers.get("Authorization") == f"Bot {self.token}"
        if (
            parts[:1] in (["users"], ["oauth2"], ["gateway"], ["applications"], ["channels"])
            and not authorized
        ):
            return self._json({"message": "401: Unauthorized", "code": 0}, 401)
        if parts == ["users", "@me"]:
            return self._json(BOT_USER)
        if parts == ["oauth2", "applications", "@me"]:
            return self._json(
                {"id": str(APP_ID), "name": "lookup", "description": "", "icon": None, "bot_public": True,
                 "bot_require_code_grant": False, "owner": BOT_USER, "verify_key": "00", "flags": 0}
            )  # fmt: skip
        if parts[:2] == ["gateway", "bot"] or parts == ["gateway"]:
            limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
            return self._json({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})
        if parts[0] == "applications" and method == "PUT":
            scope = "global" if parts[2] == "commands" else f"guild:{parts[3]}"
            with self._changed:
                self.commands[scope] = body
                self._changed.notify_all()
            return self._json([c | {"id": str(snowflake()), "application_id": str(APP_ID)} for c in body])
        if parts[0] == "interactions" and parts[-1] == "callback":
            with self._lock:
                drop, self.callback_drops = self.callback_drops > 0, max(0, self.callback_drops - 1)
            if drop and request.transport is not None:
                request.transport.close()  # the client reads "server disconnected"
                return web.Response(status=204)
            return await self._callback(int(parts[1]), parts[2], body)
        if parts[0] == "webhooks":
            return self._webhook(method, parts, body)
        if parts[0] == "channels" and parts[-1] == "messages" and method == "POST":
            channel_id = int(parts[1])
            if channel_id in self.gone_channels:
                return self._json({"message": "Unknown Channel", "code": 10003}, 404)
            if (faulted := self._fault("channel_message")) is not None:
                return faulted
            if (limited := self._rate_limit(f"channels/{channel_id}")) is not None:
                return limited
            mid = snowflake()
            self._record(
                Event(time.monotonic(), "channel_message", channel_id, body.get("content", ""), body)
            )
            return self._limited_ok(
                f"channels/{channel_id}", self._message_payload(mid, channel_id, body.get("content", ""))
            )
        if parts[0] == "channels" and parts[-1] == "typing":
            self._record(Event(time.monotonic(), "typing", int(parts[1]), "", {}))
            return web.Response(status=204)
        return self._json({"message": "404: Not Found", "code": 0}, 404)

    async def _callback(self, iid: int, token: str, body: dict[str, Any]) -> web.Response:
        with self._lock:
            record = self.interactions.get(iid)
            if record is None or record.token != token:
                return self._json({"message": "Unknown interaction", "code": 10062}, 404)
            if time.monotonic() - record.dispatched_at > INTERACTION_DEADLINE:
                return self._json({"message": "Unknown interaction", "code": 10062}, 404)
            if record.responded:
                return self._json(
                    {"message": "Interaction has already been acknowledged.", "code": 40060}, 400
                )
        if (faulted := self._fault("callback")) is not None:
            return faulted
        response_type = body.get("type", 0)
        if (record.type == 4) != (response_type == 8) or (response_type in (6, 7) and record.type != 3):
            # an autocomplete takes choices, and only it; only a component press updates its message
            return self._json({"message": "Interaction response type invalid", "code": 50035}, 400)
        if problem := self._bad_components((body.get("data") or {}).get("components")):
            return self._json({"message": problem, "code": 50035}, 400)
        choices = (body.get("data") or {}).get("choices", [])
        if response_type == 8 and (
            len(choices) > 25 or any(not 1 <= len(str(c.get("name", ""))) <= 100 for c in choices)
        ):
            return self._json({"message": "Invalid Form Body", "code": 50035}, 400)
        with self._lock:
            record.responded = True
        kind = {4: "callback", 5: "deferred", 6: "deferred_update", 8: "autocomplete"}.get(
            response_type, f"callback{response_type}"
        )
        data = body.get("data") or {}
        ephemeral = bool(int(data.get("flags", 0)) & 64)
        self._record(
            Event(time.monotonic(), kind, record.channel_id, data.get("content", ""), body, iid, ephemeral)
        )
        mid = snowflake()
        message = self._message_payload(mid, record.channel_id, data.get("content", ""))
        return self._json(
            {
                "interaction": {"id": str(iid), "type": 2, "response_message_id": str(mid),
                                "response_message_loading": kind == "deferred",
                                "response_message_ephemeral": ephemeral},
                "resource": {"type": body.get("type", 4), "message": message},
            }
        )  # fmt: skip

    def _webhook(self, method: str, parts: list[str], body: dict[str, Any]) -> web.Response:
        token = parts[2] if len(parts) > 2 else ""
        with self._lock:
            record = self.by_token.get(token)
        if record is None or time.time() - snowflake_time(record.id) > TOKEN_LIFETIME:
            return self._json({"message": "Invalid Webhook Token", "code": 50027}, 401)
        kind = "edit" if method == "PATCH" else "followup"
        if (faulted := self._fault(kind)) is not None:
            return faulted
        if problem := self._bad_components(body.get("components")):
            return self._json({"message": problem, "code": 50035}, 400)
        route = f"webhooks/{parts[1]}/{token}"
        if (limited := self._rate_limit(route)) is not None:
            return limited
        self._record(
            Event(time.monotonic(), kind, record.channel_id, body.get("content", ""), body, record.id)
        )
        return self._limited_ok(
            route, self._message_payload(snowflake(), record.channel_id, body.get("content", ""))
        )
