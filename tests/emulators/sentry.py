"""A local Sentry endpoint that receives the real envelopes the SDK sends.

`POST /api/<project>/envelope/` with `X-Sentry-Auth`; bodies gzip (or brotli when the SDK
finds it, or plain). Keeps every raw body (decompressed) and every parsed event.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from typing import Any

from aiohttp import web

from tests.emulators.loopback import LoopbackServer


class SentryEmulator:
    def __init__(self, port: int = 0) -> None:
        self._lock = threading.Lock()
        self.raw: list[bytes] = []
        self.events: list[dict[str, Any]] = []
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_post("/api/{project}/envelope/", self._envelope)
        self.server = LoopbackServer(app, port)

    @property
    def dsn(self) -> str:
        return f"http://publickey0123456789@127.0.0.1:{self.server.port}/1"

    def start(self) -> SentryEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def find(self, **tags: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if all(dict(_tags(e)).get(k) == v for k, v in tags.items())]

    def raw_text(self) -> str:
        with self._lock:
            return b"\n".join(self.raw).decode(errors="replace")

    async def _envelope(self, request: web.Request) -> web.Response:
        if "sentry_key=" not in request.headers.get("X-Sentry-Auth", ""):
            return web.Response(status=401)
        body = await request.read()  # aiohttp already undoes gzip/deflate (and br if it can)
        encoding = request.headers.get("Content-Encoding", "")
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        elif encoding == "deflate" and not body.startswith(b"{"):
            body = zlib.decompress(body)
        elif encoding == "br" and not body.startswith(b"{"):
            import importlib

            body = importlib.import_module("brotli").decompress(body)
        events = []
        lines = body.split(b"\n")
        for header, payload in zip(lines[1::2], lines[2::2], strict=False):
            try:
                item = json.loads(header)
            except ValueError:
                continue
            if item.get("type") in ("event", "transaction"):
                events.append(json.loads(payload))
        with self._lock:
            self.raw.append(body)
            self.events.extend(events)
        return web.json_response({"id": "0" * 32})


def _tags(event: dict[str, Any]) -> list[tuple[str, str]]:
    tags = event.get("tags") or {}
    return list(tags.items()) if isinstance(tags, dict) else [tuple(t) for t in tags]
