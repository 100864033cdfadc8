"""/reviews WHAT [in PLACE] — restaurant reviews merged from Yelp, Foursquare and Google.

The three sources are asked in parallel, each as its own Celery task with its own retries,
breaker and quota (tasks/fanout.py). `merge` recognises the same place across sources (name
and distance), combines ratings weighted by review counts, and says which sources are
missing, so one or two failing sources still leave an answer.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any, NoReturn

from bot.commands.registry import Option, Params, UsageError, fan_out
from bot.core.i18n import N_, Message, joined, number, paged, t, tn
from bot.core.text import clean
from bot.upstream.client import PermanentError, Upstream
from config import Settings

SOURCES = ("yelp", "foursquare", "google-places")
LABELS = {"yelp": "Yelp", "foursquare": "Foursquare", "google-places": "Google"}
KEYS = {"yelp": "YELP_API_KEY", "foursquare": "FOURSQUARE_API_KEY", "google-places": "GOOGLE_PLACES_API_KEY"}
NO_KEYS = t(
    "Reviews are not set up: set at least one of YELP_API_KEY, FOURSQUARE_API_KEY or "
    "GOOGLE_PLACES_API_KEY and restart the workers."
)
SAME_PLACE_METRES = 150
TOP = 5  # places a page
PAGES = 3  # pages at most: "More" shows the next
PRIOR_RATING, PRIOR_WEIGHT = 3.5, 20  # ranking: a 5.0 from 3 reviews does not beat 4.7 from 3,000


def parse(args: str) -> Params:
    text = clean(args)
    what, sep, place = text.rpartition(" in ")
    if not sep:
        what, place = text, ""
    what, place = what.strip(), place.strip()
    if not what:
        raise UsageError(t("Say what to look for, e.g. /reviews pizza in Naples."))
    if len(what) > 80 or len(place) > 80:
        raise UsageError(t("That is too long; keep what and where under 80 characters each."))
    return {"what": what.casefold(), "place": place.casefold()}


def enabled_sources(settings: Settings) -> list[str]:
    return [s for s in SOURCES if getattr(settings, KEYS[s]).get_secret_value()]


def raise_needs_place(source: str) -> NoReturn:
    raise PermanentError(source, "needs_a_place")


def _place(name: str, rating: Any, count: Any, coords: dict[str, Any], address: str) -> dict[str, Any]:
    return {
        "name": str(name),
        "rating": float(rating) if rating is not None else None,
        "count": int(count or 0),
        "lat": coords.get("latitude"),
        "lon": coords.get("longitude"),
        "address": str(address or ""),
    }


def _normal(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name.casefold())
    return re.sub(r"[^a-z0-9]+", "", "".join(ch for ch in folded if not unicodedata.combining(ch)))


def _metres(a: dict[str, Any], b: dict[str, Any]) -> float:
    if None in (a["lat"], a["lon"], b["lat"], b["lon"]):
        return math.inf
    lat1, lon1, lat2, lon2 = map(math.radians, (a["lat"], a["lon"], b["lat"], b["lon"]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    na, nb = _normal(a["name"]), _normal(b["name"])
    similar = na == nb or (min(len(na), len(nb)) >= 4 and (na in nb or nb in na))
    distance = _metres(a, b)
    return similar and (distance <= SAME_PLACE_METRES or (distance == math.inf and na == nb))


def merge(results: list[dict[str, Any]], params: Params) -> tuple[Message, bool]:
    """(text, answered): answered is False only when no source answered at all."""
    merged: list[dict[str, Any]] = []
    answered: list[str] = []
    missing: list[Message] = []
    for result in sorted(results, key=lambda r: SOURCES.index(r["source"])):
        label = LABELS[result["source"]]
        if "error" in result:
            missing.append(t("{source} ({error})", source=label, error=result["error"]))
            continue
        answered.append(label)
        for place in result["places"]:
            match = next((m for m in merged if _same(m, place)), None)
            if match is None:
                match = {**place, "ratings": [], "sources": []}
                merged.append(match)
            if place["rating"] is not None:
                match["ratings"].append((place["rating"], max(place["count"], 1)))
            if label not in match["sources"]:
                match["sources"].append(label)
    if not answered:
        return t("Sorry, no review source is answering right now: {sources}.", sources=joined(missing)), False
    for place in merged:
        weight = sum(c for _, c in place["ratings"])
        place["combined"] = sum(r * c for r, c in place["ratings"]) / weight if weight else None
        place["reviews"] = weight if place["ratings"] else 0
        place["score"] = (PRIOR_RATING * PRIOR_WEIGHT + (place["combined"] or 0) * weight) / (
            PRIOR_WEIGHT + weight
        )
    ranked = sorted((p for p in merged if p["combined"] is not None), key=lambda p: -p["score"])
    ranked = ranked[: TOP * PAGES]
    what, where = params["what"], params["place"]
    if ranked:
        heading = (
            t("Reviews for {what} in {place}:", what=what, place=where)
            if where
            else t("Reviews for {what}:", what=what)
        )
    else:
        heading = (
            t("No places found for {what} in {place}.", what=what, place=where)
            if where
            else t("No places found for {what}.", what=what)
        )
    lines: list[Message] = []
    for n, place in enumerate(ranked, 1):
        lines.append(
            tn(
                "{rank}. {name} — {rating}★ from {n} review ({sources})",
                "{rank}. {name} — {rating}★ from {n} reviews ({sources})",
                place["reviews"],
                rank=n,
                name=place["name"],
                rating=number(place["combined"], "0.0"),
                n=place["reviews"],
                sources=", ".join(place["sources"]),
            )
        )
    tail: list[Message] = [t("Missing: {sources}.", sources=joined(missing, "; "))] if missing else []
    pages: list[Message] = [[heading, *lines[i : i + TOP], *tail] for i in range(0, len(lines), TOP)]
    return (paged(pages) if len(pages) > 1 else pages[0] if pages else [heading, *tail]), True


@fan_out(
    "reviews",
    help=N_("restaurant reviews merged from Yelp, Foursquare and Google"),
    usage="/reviews WHAT [in PLACE]",
    parse=parse,
    ttl_setting="REVIEWS_CACHE_TTL",
    provider_name=N_("Review search"),
    options=(Option("what", N_("what to eat, e.g. pizza in Naples")),),
    sources=SOURCES,
    merge=merge,
    enabled=enabled_sources,
    none_enabled=NO_KEYS,
)
def fetch(source: str, params: Params, upstream: Upstream) -> list[dict[str, Any]]:
    """Ask one source; returns places as {name, rating (0-5), count, lat, lon, address}."""
    settings = upstream.settings
    key = getattr(settings, KEYS[source]).get_secret_value()
    what, place = params["what"], params["place"]
    if source == "yelp":
        if not place:
            raise_needs_place(source)
        data = upstream.get_json(
            "yelp",
            f"{settings.YELP_API_URL}/businesses/search",
            {"term": what, "location": place, "limit": 10},
            headers={"Authorization": f"Bearer {key}"},
            not_found="",
        )
        return [
            _place(b["name"], b.get("rating"), b.get("review_count"), b.get("coordinates") or {},
                   ", ".join((b.get("location") or {}).get("display_address") or []))
            for b in data.get("businesses") or []
        ]  # fmt: skip
    if source == "foursquare":
        if not place:
            raise_needs_place(source)
        data = upstream.get_json(
            "foursquare",
            f"{settings.FOURSQUARE_API_URL}/places/search",
            {"query": what, "near": place, "limit": 10, "fields": "name,rating,stats,geocodes,location"},
            headers={"Authorization": key},
            not_found="",
        )
        return [
            _place(r["name"], r["rating"] / 2 if r.get("rating") is not None else None,  # 0-10 scale
                   (r.get("stats") or {}).get("total_ratings"), (r.get("geocodes") or {}).get("main") or {},
                   (r.get("location") or {}).get("formatted_address", ""))
            for r in data.get("results") or []
        ]  # fmt: skip
    data = upstream.get_json(
        "google-places",
        f"{settings.GOOGLE_PLACES_API_URL}/places:searchText",
        method="POST",
        json_body={"textQuery": f"{what} in {place}" if place else what, "pageSize": 10},
        headers={
            "X-Goog-Api-Key": key,
            "X-Goog-FieldMask": "places.displayName,places.rating,places.userRatingCount,"
            "places.location,places.formattedAddress",
        },
        not_found="",
    )
    return [
        _place((p.get("displayName") or {})["text"], p.get("rating"), p.get("userRatingCount"),
               p.get("location") or {}, p.get("formattedAddress", ""))
        for p in data.get("places") or []
    ]  # fmt: skip
