"""Commands about the asker's own settings, kept in Redis (`keys.prefs`): `/lang`.

The gate reads the settings hash with every message (gate.lua), so a choice made here holds
for the very next answer, from every bot process and worker.
"""

from __future__ import annotations

from typing import Any

from bot.commands.registry import Option, Params, UsageError, personal
from bot.core import i18n, keys
from bot.core.i18n import N_, Message, t
from bot.core.request import Request

AUTO = "auto"


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
