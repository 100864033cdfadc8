"""Bad input gets a usage or error reply; nothing crashes and nothing goes unanswered."""

from __future__ import annotations

import pytest

from bot.commands.lookups import fx, wiki
from bot.commands.registry import UsageError
from tests.conftest import Chat

HUGE = "9" * 10_000


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/fx", "Give an amount and two currency codes.\nUsage: /fx AMOUNT FROM TO"),
        ("/fx   ", "Usage: /fx AMOUNT FROM TO"),
        (f"/fx {HUGE} USD EUR", "That is too long (10008 characters; at most 500)."),
        ("/fx 1e999 USD EUR", "is not an amount such as 100 or 2.50"),
        ("/fx NaN USD EUR", "is not an amount such as 100 or 2.50"),
        ("/fx -5 USD EUR", "is not an amount such as 100 or 2.50"),
        ("/fx 0 USD EUR", "The amount must be between 0.000001 and 1,000,000,000,000."),
        ("/fx 2e12 USD EUR", "The amount must be between 0.000001 and 1,000,000,000,000."),
        ("/fx 1 EUR EUR", "Pick two different currencies."),
        ("/fx 1 €€€ USD", "'€€€' is not a three-letter currency code"),
        ("/fx 1 USD EUR; DROP TABLE users", "Give an amount and two currency codes."),
        ("/wiki", "Name a topic.\nUsage: /wiki TOPIC"),
        ("/wiki \u200b\u202e\u0000", "Name a topic."),
        ("/wiki " + "ü" * 200, "That title is too long for Wikipedia."),
        ("/wiki {{template}}", "Titles cannot contain"),
        ("/" + "x" * 5000, "Unknown command /" + "x" * 32 + ". Send /help for the list."),
    ],
)
def test_bad_arguments_get_a_usage_message(chat: Chat, line: str, expected: str) -> None:
    chat.send(line)
    assert expected in chat.immediate_reply()


@pytest.mark.parametrize(
    "topic",
    [
        "'; DROP TABLE users; --",
        "../../../etc/passwd",
        "<script>alert(1)</script>",
        "𝔄𝔩𝔞𝔫 \u202eTuring\U0001f600",
        "%00%0d%0aSet-Cookie: x=1",
    ],
)
def test_odd_but_valid_topics_get_an_answer(chat: Chat, topic: str) -> None:
    chat.send(f"/wiki {topic}")
    reply = chat.reply()
    assert reply.startswith(("No Wikipedia article named", "Titles cannot contain", "Alan Turing"))


def test_fx_parser_normalises_equivalent_spellings() -> None:
    assert (
        fx.parse("1.50 usd eur")
        == fx.parse("1,5 USD to EUR")
        == {"amount": "1.5", "from": "USD", "to": "EUR"}
    )
    assert fx.parse("100 USD EUR")["amount"] == "100"


def test_wiki_parser_strips_control_characters_and_capitalises() -> None:
    assert wiki.parse("  alan\tturing\n") == {"title": "Alan turing"}
    assert wiki.parse("ada\u200b lovelace") == {"title": "Ada lovelace"}
    with pytest.raises(UsageError):
        wiki.parse("\x00\x01")
