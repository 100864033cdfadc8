"""Commands about the asker's own settings, kept in Redis (`keys.prefs`): `/lang`, `/timezone`.

The gate reads the settings hash with every message (gate.lua), so a choice made here holds
for the very next answer, from every bot process and worker.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Any

from bot.commands.registry import Option, Params, UsageError, personal
from bot.core import i18n, keys
from bot.core.i18n import N_, Message, t
from bot.core.request import Request

AUTO = "auto"
DEFAULT_ZONE = "UTC"


def _names() -> str:
    return ", ".join(f"{code} ({i18n.NAMES[code]})" for code in i18n.LANGUAGES)


def parse_language(args: str) -> Params:
    words = args.split()
    if not words:
        return {"language": ""}
    if len(words) > 1:
        raise UsageError(t("Name one language: {choices}, or auto.", choices=_names()))
    word = words[0].casefold()
    if word == AUTO:
        return {"language": AUTO}
    language = word.replace("_", "-").split("-")[0]  # "de-AT" is German
    if language not in i18n.LANGUAGES:
        raise UsageError(
            t(
                "I do not speak {language} yet: {choices}, or auto.",
                language=repr(word[:20]),
                choices=_names(),
            )
        )
    return {"language": language}


@personal(
    "lang",
    help=N_("answer in another language (en, de, fr), or auto"),
    usage="/lang [en|de|fr|auto]",
    parse=parse_language,
    options=(Option("language", N_("en, de, fr, or auto to follow your app"), required=False),),
)
async def lang(redis: Any, request: Request, params: Params) -> Message:
    key = keys.prefs(request.user_key)
    language = params["language"]
    if not language:
        chosen = await redis.hget(key, keys.LANG_FIELD)
        if chosen:
            return t(
                "You chose {name}. Send /lang auto to follow your app's language.",
                name=i18n.NAMES[i18n.choose(chosen.decode())],
            )
        return t(
            "I answer in {name}, as your app asks. Choose another with /lang: {choices}.",
            name=i18n.NAMES[i18n.choose(request.locale)],
            choices=_names(),
        )
    if language == AUTO:
        await redis.hdel(key, keys.LANG_FIELD)
        # Rendered here, in the language the answer will now follow (the app's).
        follow = i18n.choose(request.locale)
        return i18n.render(
            t("From now on I follow your app's language ({name}).", name=i18n.NAMES[follow]), follow
        )
    await redis.hset(key, keys.LANG_FIELD, language)
    # In the language just chosen: the gate read the old choice for this message.
    return i18n.render(t("From now on I answer in {name}.", name=i18n.NAMES[language]), language)


def parse_zone(args: str) -> Params:
    words = args.split()
    if not words:
        return {"zone": ""}
    if len(words) > 1 or not _zone(words[0]):
        raise UsageError(
            t("{zone} is not a time zone such as Europe/Berlin or UTC.", zone=repr(args.strip()[:40]))
        )
    return {"zone": _zone(words[0])}


def _zone(name: str) -> str:
    """The IANA zone's canonical spelling, or "" when there is no such zone."""
    if len(name) > 64 or not re.match(r"^[A-Za-z0-9_+\-/]+$", name):
        return ""
    for candidate in (name, "/".join(part[:1].upper() + part[1:] for part in name.split("/")), name.upper()):
        try:
            return str(zoneinfo.ZoneInfo(candidate))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            continue
    return ""


async def zone_of(redis: Any, request: Request) -> str:
    """The asker's /timezone, UTC until they set one."""
    zone = await redis.hget(keys.prefs(request.user_key), keys.TIMEZONE_FIELD)
    return zone.decode() if isinstance(zone, bytes) else zone or DEFAULT_ZONE


@personal(
    "timezone",
    help=N_("your time zone for /daily, e.g. Europe/Berlin"),
    usage="/timezone [ZONE]",
    parse=parse_zone,
    options=(Option("zone", N_("an IANA time zone, e.g. Europe/Berlin"), required=False),),
)
async def timezone(redis: Any, request: Request, params: Params) -> Message:
    if not params["zone"]:
        return t("Your time zone is {zone}.", zone=await zone_of(redis, request))
    await redis.hset(keys.prefs(request.user_key), keys.TIMEZONE_FIELD, params["zone"])
    return t("Your time zone is now {zone}. New /daily subscriptions use it.", zone=params["zone"])
