"""The message catalogs against the code, and rendering for a reader (docs/i18n.md). The chat
tests — a German user on Telegram and Discord, /lang — are in test_telegram.py and
test_discord.py, on those platforms' running bots."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.core import i18n
from bot.core.i18n import day, number, t, tn

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"t": None, "tn": (1, 2), "N_": None}  # as `make catalogs` passes them
PLACEHOLDER = re.compile(r"\{(\w*)\}")


def in_code() -> dict[str, Any]:
    """Every msgid the code marks (str, or (singular, plural)), keyed by its msgid."""
    found: dict[str, Any] = {}
    for pattern in ("bot/**.py", "tasks/**.py"):
        for _, _, message, _, _ in extract_from_dir(ROOT, [(pattern, "python")], keywords=KEYWORDS):
            found[message[0] if isinstance(message, tuple) else message] = message
    return found


def read(path: Path) -> Catalog:
    with path.open("rb") as po:
        return read_po(po)


def problems(catalog: Catalog, wanted: dict[str, Any]) -> list[str]:
    """What is wrong with one language's catalog, as sentences (empty: nothing)."""
    found = []
    entries = {m.id[0] if isinstance(m.id, tuple) else m.id: m for m in catalog if m.id}
    for msgid, message in sorted(wanted.items()):
        entry = entries.get(msgid)
        string: Any = entry.string if entry is not None else ""
        forms: list[str] = list(string) if isinstance(string, tuple) else [string]
        if entry is None or not all(forms) or entry.fuzzy:
            found.append(f"not translated: {msgid!r}")
            continue
        if isinstance(message, tuple) != isinstance(entry.id, tuple):
            found.append(f"plural forms differ: {msgid!r}")
        plural = isinstance(message, tuple)
        english = set(PLACEHOLDER.findall(" ".join(message) if plural else message))
        for form in forms:
            used = set(PLACEHOLDER.findall(form))  # a plural's "one" form may leave out {n}
            if used - english or (not plural and used != english):
                found.append(f"placeholders differ from the English: {msgid!r} → {form!r}")
                continue
            try:  # a stray brace ("{ }") breaks str.format at the reader's end
                for text in (form, *(message if plural else (message,))):
                    text.format(**dict.fromkeys(english, "x"))
            except (KeyError, IndexError, ValueError):
                found.append(f"not a format string: {msgid!r} → {form!r}")
    found += [f"no longer in the code: {msgid!r}" for msgid in sorted(set(entries) - set(wanted))]
    return found


def test_the_template_is_what_the_code_marks() -> None:
    template = read(ROOT / "bot" / "locale" / "messages.pot")
    assert {m.id[0] if isinstance(m.id, tuple) else m.id for m in template if m.id} == set(in_code()), (
        "bot/locale/messages.pot is out of date: run `make catalogs`"
    )


def test_every_language_has_every_message() -> None:
    wanted = in_code()
    assert len(wanted) > 100, "the extraction found too little: are the keywords right?"
    for language in i18n.LANGUAGES:
        if language == i18n.SOURCE:
            continue
        path = ROOT / "bot" / "locale" / language / "LC_MESSAGES" / "messages.po"
        assert path.exists(), f"no catalog for {language}"
        assert problems(read(path), wanted) == [], f"{language}: run `make catalogs`, then translate"


def test_a_missing_or_broken_translation_is_caught() -> None:
    """The check above can fail: a catalog missing one message, or with a placeholder
    misspelled, is reported."""
    wanted = in_code()
    catalog = read(ROOT / "bot" / "locale" / "de" / "LC_MESSAGES" / "messages.po")
    assert problems(catalog, wanted) == []
    catalog.delete("Name a place.")
    catalog["Usage: {usage}"].string = "Verwendung: {usgae}"
    assert problems(catalog, wanted) == [
        "not translated: 'Name a place.'",
        "placeholders differ from the English: 'Usage: {usage}' → 'Verwendung: {usgae}'",
    ]


def test_numbers_dates_and_plurals_follow_the_reader() -> None:
    message = t(
        "{amount} {src} = {converted} {dst} (ECB rate of {date})",
        amount=number(Decimal("1234.5"), "#,##0.00"),
        src="USD",
        converted=number(Decimal("1100.25"), "#,##0.00"),
        dst="EUR",
        date=day("2026-11-27"),
    )
    assert i18n.render(message, "en") == "1,234.50 USD = 1,100.25 EUR (ECB rate of Nov 27, 2026)"
    assert i18n.render(message, "de") == "1.234,50 USD = 1.100,25 EUR (EZB-Kurs vom 27.11.2026)"
    assert i18n.render(message, "fr") == "1\u202f234,50 USD = 1\u202f100,25 EUR (taux BCE du 27 nov. 2026)"
    days = [tn("{n} day ago", "{n} days ago", n, n=n) for n in (1, 3)]
    assert [i18n.render(d, "de") for d in days] == ["1 Tag", "3 Tagen"]
    assert [i18n.render(d, "en") for d in days] == ["1 day ago", "3 days ago"]


def test_the_language_comes_from_the_tag_or_the_default() -> None:
    assert i18n.choose("de-AT") == "de"
    assert i18n.choose("pt_BR") == i18n.choose("") == i18n.choose(None) == "en"
    assert i18n.choose("", "FR") == "fr", "the first tag we have a catalog for wins"
    assert i18n.choose("de_DE.UTF-8") == "de", "the console's LANG"


def test_a_translation_that_does_not_fit_falls_back_to_english(caplog: Any) -> None:
    catalog = i18n.catalog("de")
    broken = "{n} s ago"
    saved = catalog._catalog[broken]  # type: ignore[attr-defined]
    catalog._catalog[broken] = "{m} s"  # type: ignore[attr-defined]
    try:
        assert i18n.render(t(broken, n=5), "de") == "5 s ago"
    finally:
        catalog._catalog[broken] = saved  # type: ignore[attr-defined]
    assert "does not fit its arguments" in caplog.text
