"""/wiki TOPIC — the summary of a Wikipedia article (Wikimedia REST API)."""

from __future__ import annotations

from urllib.parse import quote

from bot.commands.registry import Option, Params, UsageError, lookup
from bot.core.text import clean
from bot.upstream.client import Upstream

MAX_TITLE = 255  # MediaWiki's own limit on a title, in bytes
MAX_EXTRACT = 700


def parse(args: str) -> Params:
    title = clean(args)
    if not title:
        raise UsageError("Name a topic.")
    if len(title.encode()) > MAX_TITLE:
        raise UsageError("That title is too long for Wikipedia.")
    if any(ch in title for ch in "#<>[]{}|"):
        raise UsageError("Titles cannot contain # < > [ ] { } |.")
    # MediaWiki titles are case-sensitive except for the first letter.
    return {"title": title[0].upper() + title[1:]}


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;: ") + "…"


@lookup(
    "wiki",
    help="summary of a Wikipedia article",
    usage="/wiki TOPIC",
    parse=parse,
    ttl_setting="WIKI_CACHE_TTL",
    provider_name="Wikipedia",
    breaker="wikipedia",
    options=(Option("topic", "the article to look up, e.g. Alan Turing"),),
)
def wiki(params: Params, upstream: Upstream) -> str:
    title = params["title"]
    path = quote(title.replace(" ", "_"), safe="")
    url = f"{upstream.settings.WIKI_API_URL}/page/summary/{path}"
    data = upstream.get_json("wikipedia", url, not_found=f"No Wikipedia article named “{title}”.")
    heading = str(data["title"])
    extract = _shorten(str(data.get("extract") or "").strip(), MAX_EXTRACT)
    link = data.get("content_urls", {}).get("desktop", {}).get("page", "")
    if data.get("type") == "disambiguation":
        extract = f"“{heading}” may refer to several articles. " + extract
    return "\n".join(part for part in (heading, extract, link) if part)
