"""Emulated upstream APIs with their real response shapes and injectable faults.

Frankfurter: `GET /fx/latest?amount=&from=&to=` → `{"amount","base","date","rates":{TO: x}}`,
404 `{"message":"not found"}` for an unknown currency.
Wikipedia REST: `GET /wiki/page/summary/{title}` → the summary object; 404 problem JSON when
there is no article; 403 without a User-Agent, as Wikimedia does.

Faults are scripted per provider and consumed one per request, in order:
`upstreams.script("fx", Fault(status=503), Fault(status=429, retry_after=1), Fault(delay=3))`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from tests.emulators.loopback import LoopbackServer

RATES_TO_EUR = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "JPY": 0.0061, "CHF": 1.05}

ARTICLES = {
    "Alan_Turing": {
        "type": "standard",
        "title": "Alan Turing",
        "extract": "Alan Mathison Turing was an English mathematician, computer scientist, logician, "
        "cryptanalyst, philosopher and theoretical biologist.",
        "content_urls": {"desktop": {"page": "https://en.wikipedia.org/wiki/Alan_Turing"}},
    },
    "AT&T": {
        "type": "standard",
        "title": "AT&T",
        "extract": "AT&T <Inc.> is an American telecom company; see <b>this</b> & that.",
        "content_urls": {"desktop": {"page": "https://en.wikipedia.org/wiki/AT%26T"}},
    },
    "Everyone": {
        "type": "standard",
        "title": "Everyone",
        "extract": "Hello @everyone and @here, and <@&123456> the role: nobody may be pinged.",
        "content_urls": {"desktop": {"page": "https://en.wikipedia.org/wiki/Everyone"}},
    },
    "Mercury": {
        "type": "disambiguation",
        "title": "Mercury",
        "extract": "Mercury commonly refers to: Mercury (planet), Mercury (element).",
        "content_urls": {"desktop": {"page": "https://en.wikipedia.org/wiki/Mercury"}},
    },
}


@dataclass
class Fault:
    status: int = 0  # answer with this status (and a JSON error body)
    retry_after: float | None = None  # with the status: a Retry-After header
    delay: float = 0.0  # wait this long first (longer than the read timeout = a timeout)
    body: str | None = None  # answer 200 with this raw body (malformed JSON, wrong shape)


class Upstreams:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self.calls: dict[str, list[float]] = defaultdict(list)
        self.latency: dict[str, float] = defaultdict(float)
        self.user_agents: list[str] = []
        app = web.Application()
        app.router.add_get("/fx/latest", self._fx)
        app.router.add_get("/wiki/page/summary/{title:.+}", self._wiki)
        self.server = LoopbackServer(app)

    # -- test-side controls -------------------------------------------------------
    def start(self) -> Upstreams:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def url(self, provider: str) -> str:
        return f"{self.server.url}/{provider}"

    def script(self, provider: str, *faults: Fault) -> None:
        with self._lock:
            self._faults[provider].extend(faults)

    def count(self, provider: str) -> int:
        with self._lock:
            return len(self.calls[provider])

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.calls.clear()
            self.latency.clear()
            self.user_agents.clear()

    # -- server side -------------------------------------------------------------------
    async def _enter(self, provider: str, request: web.Request) -> web.Response | None:
        with self._lock:
            self.calls[provider].append(time.monotonic())
            self.user_agents.append(request.headers.get("User-Agent", ""))
            fault = self._faults[provider].popleft() if self._faults[provider] else None
            latency = self.latency[provider]
        if latency:
            await asyncio.sleep(latency)  # emulated upstream latency
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.body is not None:
            return web.Response(text=fault.body, content_type="application/json")
        if fault.status:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            return web.json_response(
                {"message": f"emulated {fault.status}"}, status=fault.status, headers=headers
            )
        return None

    async def _fx(self, request: web.Request) -> web.Response:
        if (faulted := await self._enter("fx", request)) is not None:
            return faulted
        query = request.query
        src, dst = query.get("from", "EUR"), query.get("to", "USD")
        if src not in RATES_TO_EUR or dst not in RATES_TO_EUR:
            return web.json_response({"message": "not found"}, status=404)
        try:
            amount = float(query.get("amount", "1"))
        except ValueError:
            return web.json_response({"message": "invalid amount"}, status=422)
        rate = RATES_TO_EUR[src] / RATES_TO_EUR[dst]
        body = {"amount": amount, "base": src, "date": "2026-11-27", "rates": {dst: round(amount * rate, 4)}}
        return web.json_response(body)

    async def _wiki(self, request: web.Request) -> web.Response:
        if (faulted := await self._enter("wiki", request)) is not None:
            return faulted
        if not request.headers.get("User-Agent"):
            return web.json_response({"title": "Forbidden"}, status=403)
        title = unquote(request.match_info["title"])
        article = ARTICLES.get(title)
        canonical = {name.lower(): name for name in ARTICLES}.get(title.lower())
        if article is None and canonical:
            # Like Wikipedia's redirect pages: the REST API answers 302 to the real title.
            raise web.HTTPFound(f"/wiki/page/summary/{canonical}")
        if article is None:
            problem = {
                "type": "https://mediawiki.org/wiki/HyperSwitch/errors/not_found",
                "title": "Not found.",
                "method": "get",
                "detail": "Page or revision not found.",
                "uri": f"/en.wikipedia.org/v1/page/summary/{title}",
            }
            return web.Response(status=404, text=json.dumps(problem), content_type="application/problem+json")
        return web.json_response(article)
