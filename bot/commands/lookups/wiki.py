"""/wiki TOPIC — the summary of a Wikipedia article (Wikimedia REST API)."""

from __future__ import annotations

from urllib.parse import quote

from bot.commands.registry import Option, Params, UsageError, lookup
from bot.core.i18n import N_, Message, t
from bot.core.text import clean
from bot.upstream.client import Upstream

MAX_TITLE = 255  # MediaWiki's own limit on a title, in bytes
MAX_EXTRACT = 700


def parse(args: str) -> Params:
    title = clean(args)
    if not title:
        raise UsageError(t("Name a topic."))
    if len(title.encode()) > MAX_TITLE:
        raise UsageError(t("That title is too long for Wikipedia."))
    if any(ch in title for ch in "#<>[]{}|"):
        raise UsageError(t("Titles cannot contain {characters}.", characters="# < > [ ] { } |"))
    # MediaWiki titles are case-sensitive except for the first letter.
    return {"title": title[0].upper() + title[1:]}


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;: ") + "…"


@lookup(
    "wiki",
    help=N_("summary of a Wikipedia article"),
    usage="/wiki TOPIC",
    parse=parse,
    ttl_setting="WIKI_CACHE_TTL",
    provider_name="Wikipedia",
    breaker="wikipedia",
    options=(Option("topic", N_("the article to look up, e.g. Alan Turing")),),
)
def wiki(params: Params, upstream: Upstream) -> Message:
    title = params["title"]
    path = quote(title.replace(" ", "_"), safe="")
    url = f"{upstream.settings.WIKI_API_URL}/page/summary/{path}"
    data = upstream.get_json(
        "wikipedia", url, not_found=t("No Wikipedia article named “{title}”.", title=title)
    )
    heading = str(data["title"])
    extract: Message = _shorten(str(data.get("extract") or "").strip(), MAX_EXTRACT)
    link = data.get("content_urls", {}).get("desktop", {}).get("page", "")
    if data.get("type") == "disambiguation":
        extract = t("“{title}” may refer to several articles. {extract}", title=heading, extract=extract)
    # The article's own text stays as Wikipedia wrote it (English Wikipedia: one cache entry).
    return [part for part in (heading, extract, link) if part]
