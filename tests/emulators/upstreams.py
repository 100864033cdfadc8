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
import contextlib
import json
import random
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from tests.emulators.loopback import LoopbackServer

RATES_TO_EUR = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "JPY": 0.0061, "CHF": 1.05}
CURRENCY_NAMES = {"CHF": "Swiss Franc", "EUR": "Euro", "GBP": "British Pound", "JPY": "Japanese Yen",
                  "USD": "United States Dollar"}  # fmt: skip

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


PLACES = {
    "paris": {"id": 2988507, "name": "Paris", "latitude": 48.85341, "longitude": 2.3488, "country": "France",
              "admin1": "Île-de-France", "country_code": "FR", "timezone": "Europe/Paris"},
    "naples": {"id": 3172394, "name": "Naples", "latitude": 40.85216, "longitude": 14.26811, "country": "Italy",
               "admin1": "Campania", "country_code": "IT", "timezone": "Europe/Rome"},
    "london": {"id": 2643743, "name": "London", "latitude": 51.50853, "longitude": -0.12574,
               "country": "United Kingdom", "admin1": "England", "country_code": "GB", "timezone": "Europe/London"},
    "oslo": {"id": 3143244, "name": "Oslo", "latitude": 59.91273, "longitude": 10.74609, "country": "Norway",
             "admin1": "Oslo", "country_code": "NO", "timezone": "Europe/Oslo"},
    "rome": {"id": 3169070, "name": "Rome", "latitude": 41.89193, "longitude": 12.51133, "country": "Italy",
             "admin1": "Lazio", "country_code": "IT", "timezone": "Europe/Rome"},
    "madrid": {"id": 3117735, "name": "Madrid", "latitude": 40.4165, "longitude": -3.70256, "country": "Spain",
               "admin1": "Madrid", "country_code": "ES", "timezone": "Europe/Madrid"},
}  # fmt: skip

# Pizza in Naples as each review API describes it: the same places under slightly different
# names, ratings on different scales, and one same-named place far away (not the same place).
PIZZA_NAPLES = [
    # name, lat, lon, yelp (rating, count), foursquare (rating/10, count), google (rating, count)
    ("L'Antica Pizzeria da Michele", 40.84974, 14.26342, (4.5, 2000), (9.2, 1500), (4.6, 40000)),
    ("Gino e Toto Sorbillo", 40.85085, 14.25573, (4.5, 1500), (9.0, 1200), (4.5, 30000)),
    ("Pizzeria Starita", 40.86092, 14.24840, (4.0, 800), None, (4.5, 15000)),
    ("Concettina ai Tre Santi", 40.85301, 14.25005, None, (9.4, 300), None),
    # Further down the ranking: a second page for "More"
    ("Pizzeria Da Attilio", 40.84550, 14.24860, None, None, (4.0, 900)),
    ("Pizzeria Di Matteo", 40.85120, 14.25760, None, None, (3.9, 700)),
]
STARITA_ROME = ("Pizzeria Starita", 41.90300, 12.49640, (4.9, 50))


@dataclass
class Fault:
    status: int = 0  # answer with this status (and a JSON error body)
    retry_after: float | None = None  # with the status: a Retry-After header
    delay: float = 0.0  # wait this long first (longer than the read timeout = a timeout)
    body: str | None = None  # answer 200 with this raw body (malformed JSON, wrong shape)
    trickle: float = 0.0  # answer 200 and send the body one byte per this many seconds, forever


class Upstreams:
    def __init__(self, port: int = 0) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self.calls: dict[str, list[float]] = defaultdict(list)
        self.latency: dict[str, float] = defaultdict(float)
        self.user_agents: list[str] = []
        # Random faults per provider: (share of 503s, share of timeouts), from a seeded RNG.
        self.random_faults: dict[str, tuple[float, float]] = {}
        self._rng = random.Random(1234)
        self.timeout_delay = 1.5
        # Latency drawn uniformly from a range per provider (load tests: 0.3-3 s).
        self.latency_range: dict[str, tuple[float, float]] = {}
        # Calls being answered now, and the most there were at once, per provider.
        self.active: dict[str, int] = defaultdict(int)
        self.peak: dict[str, int] = defaultdict(int)
        self.latencies: dict[str, list[float]] = defaultdict(list)  # the emulated latency per call
        # Hold calls until this many are in flight at once (or a deadline): proves a client's
        # concurrency without relying on timing. provider -> (count, longest hold in s).
        self.gather: dict[str, tuple[int, float]] = {}
        self._gathered: dict[str, asyncio.Event] = {}
        app = web.Application()
        app.router.add_get("/fx/latest", self._fx)
        app.router.add_get("/fx/currencies", self._currencies)
        app.router.add_get("/wiki/page/summary/{title:.+}", self._wiki)
        app.router.add_get("/geocoding/search", self._geocoding)
        app.router.add_get("/forecast/forecast", self._forecast)
        app.router.add_get("/yelp/businesses/search", self._yelp)
        app.router.add_get("/foursquare/places/search", self._foursquare)
        app.router.add_post("/google/places:searchText", self._google)
        app.router.add_get("/numbers/{number}", self._numbers)
        self.server = LoopbackServer(app, port)

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
            self.random_faults.clear()
            self.latency_range.clear()
            self.calls.clear()
            self.latency.clear()
            self.active.clear()
            self.peak.clear()
            self.latencies.clear()
            self.gather.clear()
            self._gathered.clear()
            self.user_agents.clear()

    # -- server side -------------------------------------------------------------------
    async def _enter(self, provider: str, request: web.Request) -> web.StreamResponse | None:
        with self._lock:
            self.calls[provider].append(time.monotonic())
            self.user_agents.append(request.headers.get("User-Agent", ""))
            fault = self._faults[provider].popleft() if self._faults[provider] else None
            latency = self.latency[provider]
            if provider in self.latency_range:
                latency = self._rng.uniform(*self.latency_range[provider])
            if fault is None and provider in self.random_faults:
                errors, timeouts = self.random_faults[provider]
                roll = self._rng.random()
                if roll < errors:
                    fault = Fault(status=503)
                elif roll < errors + timeouts:
                    fault = Fault(delay=self.timeout_delay)
            self.latencies[provider].append(latency)
        gather = self.gather.get(provider)
        if latency or gather:
            with self._lock:
                self.active[provider] += 1
                self.peak[provider] = max(self.peak[provider], self.active[provider])
                gathered = self._gathered.setdefault(provider, asyncio.Event())
                if gather and self.active[provider] >= gather[0]:
                    gathered.set()
            try:
                if gather:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(gathered.wait(), gather[1])
                await asyncio.sleep(latency)  # emulated upstream latency
            finally:
                with self._lock:
                    self.active[provider] -= 1
        if fault is None:
            return None
        if fault.trickle:
            return await self._trickle(request, fault.trickle)
        if fault.delay:
            await asyncio.sleep(fault.delay)  # emulated hang: the client's read timeout fires
        if fault.body is not None:
            return web.Response(text=fault.body, content_type="application/json")
        if fault.status:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            return web.json_response(
                {"message": f"emulated {fault.status}"}, status=fault.status, headers=headers
            )
        return None

    @staticmethod
    async def _trickle(request: web.Request, every: float) -> web.StreamResponse:
        """A 200 whose body never ends: a space (valid JSON padding) every `every` seconds,
        until the client hangs up (or a minute passed)."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline
            and request.transport is not None
            and not request.transport.is_closing()
        ):
            try:
                await response.write(b" ")
            except (ConnectionError, RuntimeError):
                break
            await asyncio.sleep(every)  # the trickle's pace
        return response

    async def _fx(self, request: web.Request) -> web.StreamResponse:
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

    async def _wiki(self, request: web.Request) -> web.StreamResponse:
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

    async def _currencies(self, request: web.Request) -> web.StreamResponse:
        if (faulted := await self._enter("currencies", request)) is not None:
            return faulted
        return web.json_response(CURRENCY_NAMES)

    async def _geocoding(self, request: web.Request) -> web.StreamResponse:
        """As Open-Meteo documents it: one character finds nothing, two only an exact name,
        three or more also names that start so (theirs is fuzzy); at most `count` results."""
        if (faulted := await self._enter("geocoding", request)) is not None:
            return faulted
        name = request.query.get("name", "").casefold()
        count = int(request.query.get("count", 10))
        if len(name) < 2:
            found = []
        elif len(name) == 2:
            found = [PLACES[name]] if name in PLACES else []
        else:
            found = [place for key, place in PLACES.items() if key == name] + [
                place for key, place in sorted(PLACES.items()) if key.startswith(name) and key != name
            ]
        body: dict[str, Any] = {"generationtime_ms": 0.4}
        if found:  # Open-Meteo omits "results" when nothing matches
            body["results"] = found[:count]
        return web.json_response(body)

    async def _forecast(self, request: web.Request) -> web.StreamResponse:
        if (faulted := await self._enter("forecast", request)) is not None:
            return faulted
        latitude = float(request.query["latitude"])
        return web.json_response(
            {
                "latitude": latitude,
                "longitude": float(request.query["longitude"]),
                "current_units": {"temperature_2m": "°C", "apparent_temperature": "°C", "weather_code": "wmo code",
                                  "wind_speed_10m": "km/h"},
                "current": {"time": "2026-11-29T12:00", "interval": 900, "temperature_2m": round(latitude / 5, 1),
                            "apparent_temperature": round(latitude / 5 - 2, 1), "weather_code": 2,
                            "wind_speed_10m": 14.2},
            }
        )  # fmt: skip

    def _pizza(self, query: str, near: str) -> bool:
        return "pizza" in query.casefold() and near.casefold() in ("naples", "napoli", "")

    async def _yelp(self, request: web.Request) -> web.StreamResponse:
        if (faulted := await self._enter("yelp", request)) is not None:
            return faulted
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return web.json_response({"error": {"code": "UNAUTHORIZED_ACCESS_TOKEN"}}, status=401)
        found = self._pizza(request.query.get("term", ""), request.query.get("location", ""))
        businesses = [
            {"id": f"y{i}", "name": name, "rating": yelp[0], "review_count": yelp[1],
             "coordinates": {"latitude": lat, "longitude": lon},
             "location": {"display_address": ["Via dei Tribunali", "Naples"]}}
            for i, (name, lat, lon, yelp, _, _) in enumerate(PIZZA_NAPLES) if yelp and found
        ]  # fmt: skip
        return web.json_response({"businesses": businesses, "total": len(businesses)})

    async def _foursquare(self, request: web.Request) -> web.StreamResponse:
        if (faulted := await self._enter("foursquare", request)) is not None:
            return faulted
        if not request.headers.get("Authorization"):
            return web.json_response({"message": "missing auth"}, status=401)
        found = self._pizza(request.query.get("query", ""), request.query.get("near", ""))
        results = [
            {"fsq_id": f"f{i}", "name": name.upper() if i == 1 else name, "rating": fsq[0],
             "stats": {"total_ratings": fsq[1]}, "geocodes": {"main": {"latitude": lat, "longitude": lon}},
             "location": {"formatted_address": "Naples"}}
            for i, (name, lat, lon, _, fsq, _) in enumerate(PIZZA_NAPLES) if fsq and found
        ]  # fmt: skip
        return web.json_response({"results": results})

    async def _google(self, request: web.Request) -> web.StreamResponse:
        if (faulted := await self._enter("google", request)) is not None:
            return faulted
        if not request.headers.get("X-Goog-Api-Key") or not request.headers.get("X-Goog-FieldMask"):
            return web.json_response({"error": {"code": 403, "status": "PERMISSION_DENIED"}}, status=403)
        body = await request.json()
        query = str(body.get("textQuery", ""))
        found = "pizza" in query.casefold() and "naples" in query.casefold()
        places = [
            {"displayName": {"text": name, "languageCode": "it"}, "rating": google[0], "userRatingCount": google[1],
             "location": {"latitude": lat + 0.0003, "longitude": lon - 0.0002}, "formattedAddress": "Naples, Italy"}
            for name, lat, lon, _, _, google in PIZZA_NAPLES if google and found
        ]  # fmt: skip
        if found:
            name, lat, lon, (rating, count) = STARITA_ROME
            places.append({"displayName": {"text": name}, "rating": rating, "userRatingCount": count,
                           "location": {"latitude": lat, "longitude": lon}, "formattedAddress": "Rome, Italy"})  # fmt: skip
        return web.json_response({"places": places} if places else {})

    async def _numbers(self, request: web.Request) -> web.StreamResponse:
        if (faulted := await self._enter("numbers", request)) is not None:
            return faulted
        number = request.match_info["number"]
        if number == "404":
            return web.json_response({"text": "404 is an uninteresting number.", "found": False}, status=404)
        return web.json_response(
            {"text": f"{number} is the number of the test.", "number": int(number), "found": True}
        )
