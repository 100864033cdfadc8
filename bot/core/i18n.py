"""Texts users read, in their language: gettext catalogs (bot/locale/*/messages.po) and
numbers and dates formatted for the reader's locale (CLDR data, both through Babel).

Most texts are made where the reader is not known: a lookup's answer is cached once for
everyone who asks, and a worker answers requests coalesced from users of several languages.
So a text travels as a `Message` — plain JSON: the English msgid and its arguments — and is
rendered for each reader at the last moment, `render(message, language)`:

    t("No such place: “{place}”.", place=name)          # a sentence to translate
    tn("{n} review", "{n} reviews", count, n=count)     # with a plural
    number(Decimal("1234.5"), "#,##0.00")                # "1,234.50" / "1.234,50" / "1 234,50"
    day("2026-11-30")                                    # "Nov 30, 2026" / "30.11.2026"
    [line, line]                                         # lines
    "Ada Lovelace"                                       # a plain str is shown as it is

Why gettext (via Babel) rather than, say, Fluent: PO files are what translators' tools
(Weblate, Crowdin, Poedit) and Python's own `gettext` speak, Babel extracts them from the
code (`t`, `tn` and `N_` are its keywords, see docs/i18n.md) and already carries CLDR's
number and date rules, so one dependency does both. Catalogs are read from the .po files at
start-up: there is no compile step to forget in an image.
"""

from __future__ import annotations

import datetime
import functools
import gettext
import io
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

log = logging.getLogger(__name__)

Message = str | dict[str, Any] | list[Any]

SOURCE = "en"  # the language msgids are written in
LANGUAGES = ("en", "de", "fr")  # every one but SOURCE has bot/locale/<lang>/LC_MESSAGES/messages.po
NAMES = {"en": "English", "de": "Deutsch", "fr": "Français"}  # each in its own language
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


def t(msgid: str, **args: Any) -> dict[str, Any]:
    """A sentence to translate; `{name}` placeholders are filled from `args` (each itself a
    Message, a number(), a day(), or an int)."""
    return {"t": msgid, "a": args} if args else {"t": msgid}


def tn(singular: str, plural: str, count: int, **args: Any) -> dict[str, Any]:
    """A sentence whose form depends on `count` (each language has its own rules)."""
    return {"t": singular, "p": plural, "n": count, "a": args}


def N_(msgid: str) -> str:
    """Marks a string for the catalog without translating it here (command help, option
    descriptions): it is translated where it is shown, with `translate`."""
    return msgid


def number(value: Decimal | float | int, pattern: str = "#,##0.##") -> dict[str, Any]:
    """A number shown with the reader's separators, in a CLDR pattern ("#,##0.00": two
    decimals and grouping; "@@@@@@": six significant digits)."""
    return {"num": str(value), "f": pattern}


def day(iso: str) -> dict[str, Any]:
    """A date ("2026-11-30") in the reader's medium format. ValueError for what is not one
    (an upstream's garbage is refused where it is read, not when it is shown)."""
    return {"day": datetime.date.fromisoformat(iso).isoformat()}


def paged(pages: list[Message]) -> dict[str, Any]:
    """An answer in pages (/reviews): shown as its first page; a "More" button shows the next
    (bot/core/request.py, Reply.with_buttons)."""
    return {"pages": pages}


def page_count(message: Message) -> int:
    return len(message["pages"]) if isinstance(message, dict) and "pages" in message else 1


def page_of(message: Message, page: int) -> Message:
    """Page `page` (from 1) of a paged answer, the last one past its end; any other answer is
    its own only page."""
    if isinstance(message, dict) and "pages" in message:
        return message["pages"][min(max(page, 1), len(message["pages"])) - 1]
    return message


def joined(items: list[Message], separator: str = ", ") -> dict[str, Any]:
    """Several messages in a row ("Yelp (timed out); Google (busy)")."""
    return {"j": separator, "i": items}


def choose(*tags: str | None) -> str:
    """The first of `tags` (the user's /lang choice, then the platform's language_code or
    locale: "de", "de-AT", "pt_BR") that we have a catalog for, by its language subtag; the
    default otherwise."""
    for tag in tags:
        if tag:
            language = tag.replace("_", "-").split("-", 1)[0].lower()
            if language in LANGUAGES:
                return language
    return _default()


def _default() -> str:
    from config import get_settings

    return get_settings().DEFAULT_LANGUAGE


@functools.cache
def catalog(language: str) -> gettext.NullTranslations:
    """The language's translations (the source language has none: msgids are English)."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if language == SOURCE or not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as po:
        parsed = read_po(po, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, parsed)  # fuzzy entries are left out, as msgfmt does
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def translate(msgid: str, language: str) -> str:
    """One catalog string, no placeholders filled (command menus)."""
    return catalog(language).gettext(msgid)


def render(message: Message, language: str) -> str:
    """The message as `language` reads it. A translation that does not fit its arguments
    (a translator's typo) falls back to English rather than failing the reply."""
    if isinstance(message, str):
        return message
    if isinstance(message, list):
        return "\n".join(render(part, language) for part in message)
    if "num" in message:
        return format_decimal(Decimal(message["num"]), message.get("f") or "#,##0.##", locale=language)
    if "day" in message:
        return format_date(datetime.date.fromisoformat(message["day"]), "medium", locale=language)
    if "pages" in message:
        return render(message["pages"][0], language)
    if "j" in message:
        return str(message["j"]).join(render(item, language) for item in message["i"])
    args = {name: _argument(value, language) for name, value in (message.get("a") or {}).items()}
    msgid = message["t"]
    if "p" in message:
        translated = catalog(language).ngettext(msgid, message["p"], int(message["n"]))
        english = msgid if int(message["n"]) == 1 else message["p"]
    else:
        translated, english = catalog(language).gettext(msgid), msgid
    try:
        return translated.format(**args)
    except (KeyError, IndexError, ValueError):
        log.error("the %s translation of %r does not fit its arguments", language, msgid[:60])
        return english.format(**args)


def _argument(value: Any, language: str) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return format_decimal(value, "#,##0", locale=language)
    return render(value, language)
