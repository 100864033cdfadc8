"""Telegram end to end: the real python-telegram-bot in a bot process, long polling the
Bot API emulator; real workers send the replies over the wire."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from bot.commands import registry
from bot.core import cache, keys, limits
from bot.core.delivery import RetryLater
from bot.platforms.telegram.budget import BOT_BURST, WORKER_RESERVE
from bot.platforms.telegram.render import render, split_text
from tests.botprocess import BotProcess
from tests.chat_telegram import TOKEN, running
from tests.conftest import wait_until
from tests.emulators.upstreams import Fault

FX_1_EUR_USD = "1.00 EUR = 1.09 USD (ECB rate of Nov 27, 2026)"


@pytest.fixture(scope="module")
def polling_bot(worker: Any) -> Iterator[BotProcess]:
    from tests.conftest import _TELEGRAM

    with running(_TELEGRAM, "polling") as bot:
        yield bot
    assert TOKEN not in bot.logs(), "the bot token leaked into the bot's log"
    assert TOKEN.split(":")[1] not in worker.logs(), "the bot token leaked into the worker's log"


@pytest.fixture
def tg_chat(polling_bot: BotProcess, make_tg_chat: Any) -> Any:
    return make_tg_chat()


def test_commands_are_published_from_the_registry(polling_bot: BotProcess, telegram: Any) -> None:
    published = {c["command"]: c["description"] for c in telegram.state.commands}
    assert published == {c.name: c.help for c in registry.commands()}


def test_fx_gets_exactly_one_correct_reply(tg_chat: Any, telegram: Any, upstreams: Any) -> None:
    update = tg_chat.send("/fx 1 EUR USD")
    assert tg_chat.reply() == FX_1_EUR_USD
    tg_chat.assert_no_reply()
    actions = telegram.messages(tg_chat.chat_id, method="sendChatAction")
    assert [a.text for a in actions] == ["typing"], "a miss shows 'typing…' at once"
    sent = telegram.messages(tg_chat.chat_id)[0]
    assert sent.params["parse_mode"] == "HTML"
    assert json.loads(sent.params["reply_parameters"])["message_id"] == update["message"]["message_id"]
    assert upstreams.count("fx") == 1


def test_cache_hit_is_answered_by_the_adapter(
    make_tg_chat: Any, polling_bot: BotProcess, telegram: Any, upstreams: Any
) -> None:
    first, second = make_tg_chat(), make_tg_chat()
    first.send("/fx 7 GBP CHF")
    answer = first.reply()
    second.send("/fx 7 gbp chf")
    assert second.reply() == answer
    assert upstreams.count("fx") == 1
    assert telegram.messages(second.chat_id, method="sendChatAction") == [], "a hit needs no 'typing…'"


def test_flooding_user_is_told_when_to_retry(tg_chat: Any) -> None:
    for _ in range(6):
        tg_chat.send("/ping")
    replies = sorted(tg_chat.reply() for _ in range(6))
    assert replies.count("pong") == 5
    assert "You are sending too fast. Please try again in 2 s." in replies


def test_private_text_gets_a_hint(tg_chat: Any) -> None:
    tg_chat.send("hello there")
    assert "/help" in tg_chat.reply()


def test_in_groups_the_bot_answers_only_when_addressed(make_tg_chat: Any, polling_bot: BotProcess) -> None:
    group = make_tg_chat(chat_type="group")
    group.send("/ping@OtherBot")
    group.send("just chatting")
    group.send("/ping@LookupTestBot")
    assert group.reply() == "pong"
    group.send("hey @LookupTestBot what can you do?")
    assert "/help" in group.reply()
    group.send("thanks!", reply_to_bot=True)
    assert "/help" in group.reply()
    group.assert_no_reply()


def test_a_duplicate_update_gets_one_reply(tg_chat: Any, telegram: Any) -> None:
    update = telegram.message_update(tg_chat.chat_id, tg_chat.user_id, "/ping")
    telegram.push(update)
    telegram.push(update)
    assert tg_chat.reply() == "pong"
    tg_chat.assert_no_reply(within=1.0)


def test_markup_in_upstream_text_is_escaped(tg_chat: Any) -> None:
    tg_chat.send("/wiki AT&T")
    assert "AT&T <Inc.> is an American telecom company; see <b>this</b> & that." in tg_chat.reply()


def test_a_long_answer_is_split_into_messages(tg_chat: Any, redis_client: Any) -> None:
    command = registry.get("fx")
    assert command is not None
    paragraph = "word " * 900  # 4,500 characters
    long_text = f"{paragraph.strip()}\n\n{paragraph.strip()}"
    key = command.cache_key({"amount": "9", "from": "EUR", "to": "USD"})
    redis_client.set(key, cache.encode(long_text, "answer", 3600))
    tg_chat.send("/fx 9 EUR USD")
    parts = [tg_chat.reply() for _ in range(3)]
    assert all(len(p) <= 4096 for p in parts)
    assert " ".join(" ".join(parts).split()) == " ".join(long_text.split())


def test_429s_delay_but_never_lose_or_duplicate_and_limits_hold(
    make_tg_chat: Any, polling_bot: BotProcess, telegram: Any
) -> None:
    chats = [make_tg_chat() for _ in range(4)]
    telegram.fail("sendMessage", 429, retry_after=1, times=3)
    expected: dict[int, set[str]] = {}
    for c, chat in enumerate(chats):
        expected[chat.chat_id] = set()
        for n in range(3):
            amount = 100 + 10 * c + n  # distinct lookups: every reply comes from a worker
            chat.send(f"/fx {amount} EUR GBP")
            expected[chat.chat_id].add(f"{amount:,.2f} EUR")
    for chat in chats:
        got = {chat.reply(timeout=30).split(" =")[0] for _ in range(3)}
        assert got == expected[chat.chat_id]
        chat.assert_no_reply(within=0.2)
    sends = telegram.messages()
    assert len(sends) == 12
    # GCRA with burst B and interval T: any n consecutive sends span at least (n - B) * T.
    slack = 0.05
    for chat in chats:
        times = [s.t for s in sends if s.chat_id == chat.chat_id]
        assert times[-1] - times[0] >= (3 - 2) * 0.5 - slack, f"per-chat limit broken: {times}"
    # The per-bot bucket (10/second here) takes short bursts; workers use part of the burst.
    burst = BOT_BURST - WORKER_RESERVE
    times = sorted(s.t for s in sends)
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            assert times[j] - times[i] >= (j - i + 1 - burst) * 0.1 - slack, "global limit broken"


def test_a_blocked_user_403_is_not_retried(tg_chat: Any, telegram: Any, worker: Any) -> None:
    telegram.fail("sendMessage", 403)
    tg_chat.send("/fx 11 USD EUR")
    wait_until(lambda: "not deliverable on telegram: telegram 403" in worker.logs(), timeout=15)
    tg_chat.assert_no_reply(within=1.0)
    assert telegram.calls("sendMessage") == 1


def test_telegram_5xx_is_retried_until_the_reply_arrives(tg_chat: Any, telegram: Any, worker: Any) -> None:
    telegram.fail("sendMessage", 502, times=2)
    tg_chat.send("/fx 12 USD EUR")
    assert tg_chat.reply(timeout=20).startswith("12.00 USD = ")
    assert telegram.calls("sendMessage") == 3
    tg_chat.assert_no_reply()
    # The lookup's own try met the first 502 and left the reply to the deliver task.
    assert "sending left to the deliver task (telegram 502)" in worker.logs()


def test_bot_restart_during_a_lookup_loses_nothing(
    polling_bot: BotProcess, make_tg_chat: Any, telegram: Any, upstreams: Any
) -> None:
    chat = make_tg_chat()
    upstreams.latency["fx"] = 0.8  # under UPSTREAM_READ_TIMEOUT=1: slow, not failing
    chat.send("/fx 13 USD EUR")
    wait_until(lambda: upstreams.count("fx") == 1)
    polling_bot.kill()
    polling_bot.start()
    assert chat.reply(timeout=20).startswith("13.00 USD = ")
    chat.assert_no_reply(within=1.0)
    assert upstreams.count("fx") == 1


def test_split_text_breaks_at_boundaries_and_keeps_everything() -> None:
    text = ("a" * 3000 + "\n") * 3
    parts = split_text(text)
    assert [len(p) for p in parts] == [3000, 3000, 3000]
    assert split_text("x" * 9000) == ["x" * 4096, "x" * 4096, "x" * 808]
    assert split_text("") == [""]


def test_render_escapes_for_html_after_splitting() -> None:
    assert render("a < b & c > d") == ["a &lt; b &amp; c &gt; d"]
    parts = render("&" * 5000)
    assert len(parts) == 2 and parts[0] == "&amp;" * 4096


def test_an_immediate_reply_refused_with_429_is_sent_by_a_worker(tg_chat: Any, telegram: Any) -> None:
    telegram.fail("sendMessage", 429, retry_after=1)
    tg_chat.send("/ping")
    assert tg_chat.reply(timeout=20) == "pong"
    tg_chat.assert_no_reply()
    assert telegram.calls("sendMessage") == 2


def test_group_bucket_holds_a_group_to_its_rate(redis_client: Any) -> None:
    """20/minute per group: after the burst, the next send must wait the interval."""
    buckets = [limits.Bucket("out:{telegram}:group:-42", interval_ms=3000, burst=3)]
    for _ in range(3):
        limits.acquire(redis_client, buckets, deadline=0)
    with pytest.raises(RetryLater) as refused:
        limits.acquire(redis_client, buckets, deadline=0)
    assert refused.value.after is not None and 2.9 <= refused.value.after <= 3.0


def test_all_buckets_or_none_are_charged(redis_client: Any) -> None:
    full = limits.Bucket("out:{telegram}:chat:1", interval_ms=1000, burst=1)
    roomy = limits.Bucket("out:{telegram}:bot", interval_ms=10, burst=100)
    limits.acquire(redis_client, [full], deadline=0)
    with pytest.raises(RetryLater):
        limits.acquire(redis_client, [roomy, full], deadline=0)
    assert redis_client.get("out:{telegram}:bot") is None, "a refused send charged another bucket"


def test_paid_broadcasts_carry_notifications_on_their_own_lane(
    make_tg_chat: Any, telegram: Any, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TELEGRAM_PAID_BROADCAST_RATE on: a subscription's notification goes with
    allow_paid_broadcast on its own per-bot lane, so a full 30/s lane does not hold it back;
    an answer someone asked for never goes paid. Off (the default), no notification does."""
    from bot.core.request import Reply, Request
    from config import get_settings
    from tasks.deliver import send

    chat = make_tg_chat()

    def paid_lane(rate: str) -> None:  # this process sends, as a worker would
        monkeypatch.setenv("TELEGRAM_TOKEN", TOKEN)
        monkeypatch.setenv("TELEGRAM_PAID_BROADCAST_RATE", rate)
        get_settings.cache_clear()

    def sent(n: int, **meta: str) -> dict[str, Any]:
        request = Request(
            "telegram", str(chat.chat_id), str(chat.chat_id), f"paid-{chat.chat_id}-{n}", "fx", "1 EUR USD",
            {"chat_type": "private", **meta},
        )  # fmt: skip
        send(request, Reply(f"note {n}"))
        return dict(telegram.messages(chat.chat_id)[-1].params)

    seconds, micros = redis_client.time()
    full_until = seconds * 1000 + micros // 1000 + 60_000  # the 30/s lane: a minute of backlog
    redis_client.set(keys.outbound("telegram"), full_until, px=60_000)
    try:
        paid_lane("1000/second")
        assert sent(1, subscription="7")["allow_paid_broadcast"] == "true"
        with pytest.raises(RetryLater):
            sent(2)  # an answer: the full 30/s lane
        paid_lane("")  # off, the default
        with pytest.raises(RetryLater):
            sent(3, subscription="7")  # notifications share the 30/s
        redis_client.delete(keys.outbound("telegram"))
        assert "allow_paid_broadcast" not in sent(4, subscription="7")
    finally:
        redis_client.delete(keys.outbound("telegram"))
        monkeypatch.undo()
        get_settings.cache_clear()
    assert [m.text for m in telegram.messages(chat.chat_id)] == ["note 1", "note 4"]


def test_a_german_user_reads_german_numbers_from_the_same_cache(
    make_tg_chat: Any, polling_bot: BotProcess, upstreams: Any
) -> None:
    german, english = make_tg_chat(), make_tg_chat()
    german.send("/fx 1234.5 USD EUR", language_code="de")  # a miss: the worker renders it
    assert german.reply() == "1.234,50 USD = 1.135,74 EUR (EZB-Kurs vom 27.11.2026)"
    english.send("/fx 1234.5 usd eur", language_code="en-GB")  # a hit: the bot renders it
    assert english.reply() == "1,234.50 USD = 1,135.74 EUR (ECB rate of Nov 27, 2026)"
    assert upstreams.count("fx") == 1, "one cache entry serves every language"
    german.send("/fx 1 EUR", language_code="de")
    assert german.reply() == "Gib einen Betrag und zwei Währungscodes an.\nVerwendung: /fx AMOUNT FROM TO"
    german.send("/lang klingon", language_code="de")
    assert german.reply() == (
        "'klingon' spreche ich noch nicht: en (English), de (Deutsch), fr (Français) oder auto.\n"
        "Verwendung: /lang [en|de|fr|auto]"
    )
    english.send("/nope")
    assert english.reply() == "Unknown command /nope. Send /help for the list."


def test_lang_overrides_the_app_language_until_auto(make_tg_chat: Any, polling_bot: BotProcess) -> None:
    chat = make_tg_chat()
    chat.send("/lang fr", language_code="de")
    assert chat.reply() == "Désormais, je réponds en Français."
    chat.send("/fx 2 EUR USD", language_code="de")  # a worker's answer follows the choice too
    assert chat.reply() == "2,00 EUR = 2,17 USD (taux BCE du 27 nov. 2026)"
    chat.send("/lang", language_code="de")
    assert (
        chat.reply()
        == "Vous avez choisi Français. Envoyez /lang auto pour suivre la langue de votre application."
    )
    chat.send("/lang auto", language_code="de")
    assert chat.reply() == "Ab jetzt folge ich der Sprache deiner App (Deutsch)."
    chat.send("hallo", language_code="de")
    assert chat.reply() == "Befehle beginnen mit /. Sende /help für die Liste."


def test_the_menu_is_published_in_every_language(polling_bot: BotProcess, telegram: Any) -> None:
    menus = {
        language: {c["command"]: c["description"] for c in commands}
        for language, commands in telegram.state.localized_commands.items()
    }
    assert menus["de"]["fx"] == "einen Betrag zwischen Währungen umrechnen (EZB-Kurse)"
    assert set(menus["de"]) == set(menus["fr"]) == {c.name for c in registry.commands()}
    assert set(menus) == {"de", "fr"}, "English is the default menu"


def _inline(telegram: Any, user_id: int, query: str, language_code: str = "en") -> dict[str, Any]:
    """Type `@bot QUERY`; the one answer the query got (a second would be refused)."""
    update = telegram.inline_update(user_id, query, language_code)
    telegram.push(update)
    query_id = update["inline_query"]["id"]
    assert telegram.wait_for(lambda: telegram.inline_answers(query_id), 15), f"no answer to {query!r}"
    [answer] = telegram.inline_answers(query_id)
    assert len(answer["results"]) == 1
    return answer


def _shown(answer: dict[str, Any]) -> str:
    return str(answer["results"][0]["input_message_content"]["message_text"])


def test_an_inline_query_is_answered_from_a_lookup_then_from_the_cache(
    make_tg_chat: Any, polling_bot: BotProcess, telegram: Any, upstreams: Any
) -> None:
    user = make_tg_chat().user_id
    miss = _inline(telegram, user, "fx 100 usd eur", "de")  # the worker answers the query
    assert _shown(miss) == "100,00 USD = 92,00 EUR (EZB-Kurs vom 27.11.2026)"
    assert (miss["cache_time"], miss["is_personal"]) == ("0", "true")
    hit = _inline(telegram, user, "/fx 100 USD EUR", "de")  # the bot process, from the cache
    assert _shown(hit) == _shown(miss)
    fx = registry.get("fx")
    assert fx is not None and hit["cache_time"] == str(fx.ttl()), "Telegram may cache it as long as we do"
    assert hit["is_personal"] == "true", "German numbers: not for everyone who types the same"
    assert upstreams.count("fx") == 1
    _inline(telegram, user, "wiki Alan Turing")
    wiki = _inline(telegram, user, "wiki Alan Turing", "de")
    assert wiki["is_personal"] == "false", "Wikipedia's text reads the same in every language"
    usage = _inline(telegram, user, "fx 100")
    assert usage["results"][0]["title"] == "How to use it"
    assert _shown(usage) == "Give an amount and two currency codes.\nUsage: /fx AMOUNT FROM TO"
    other = _inline(telegram, user, "ban 42")  # not a lookup: never run inline
    assert _shown(other).startswith("Type a lookup after @LookupTestBot: fx 100 usd eur")


def test_a_slow_inline_lookup_says_it_is_still_looking_then_the_next_keystroke_hits(
    make_tg_chat: Any, polling_bot: BotProcess, telegram: Any, upstreams: Any
) -> None:
    user = make_tg_chat().user_id
    upstreams.script("fx", Fault(delay=1.5), Fault(delay=1.5))  # two timeouts: ~2 s > the 1 s wait
    waiting = _inline(telegram, user, "fx 5 chf usd")
    assert _shown(waiting) == "Still looking it up… type one more character to see the answer."
    assert waiting["cache_time"] == "0"
    assert wait_until(lambda: upstreams.count("fx") == 3, timeout=10)
    landed = wait_until(
        lambda: _shown(_inline(telegram, user, "fx 5 chf usd ")).startswith("5.00 CHF = "), 10
    )
    assert landed, "the next keystroke is answered from the cache"


def test_inline_queries_have_their_own_rate_limit(
    make_tg_chat: Any, polling_bot: BotProcess, telegram: Any
) -> None:
    user = make_tg_chat().user_id
    for _ in range(5):  # the message budget's burst
        _inline(telegram, user, "fx 1")
    chat = make_tg_chat(user_id=user)
    chat.send("/ping")
    assert chat.reply() == "pong", "typing inline did not use up the user's message budget"


def _press(telegram: Any, chat: Any, sent: Any, data: str) -> str:
    """Press the button `data` under `sent`; the note the press was answered with."""
    update = telegram.press_update(chat.chat_id, chat.user_id, sent, data)
    telegram.push(update)
    press_id = update["callback_query"]["id"]

    def answered() -> list[Any]:
        return [
            s
            for s in telegram.messages(method="answerCallbackQuery")
            if s.params["callback_query_id"] == press_id
        ]

    assert telegram.wait_for(answered, 10), "the press was not acknowledged"
    return str(answered()[0].text)


def test_refresh_shows_a_young_answer_and_looks_an_older_one_up_again_editing_it_in_place(
    make_tg_chat: Any, polling_bot: BotProcess, telegram: Any, upstreams: Any, redis_client: Any
) -> None:
    chat, other = make_tg_chat(), make_tg_chat()
    chat.send("/fx 9 EUR GBP")
    assert chat.reply() == "9.00 EUR = 7.69 GBP (ECB rate of Nov 27, 2026)"
    answer = telegram.messages(chat.chat_id)[-1]
    [[button]] = json.loads(answer.params["reply_markup"])["inline_keyboard"]
    assert button["text"] == "Refresh" and button["callback_data"].startswith("r:fx:")
    other.send("/fx 9 eur gbp")  # a hit, answered by the bot process: the same button
    other.reply()
    assert json.loads(telegram.messages(other.chat_id)[-1].params["reply_markup"]) == json.loads(
        answer.params["reply_markup"]
    )

    assert _press(telegram, chat, answer, button["callback_data"]) == "Up to date."
    assert upstreams.count("fx") == 1, "younger than REFRESH_FLOOR: shown as it is"

    pressed = keys.pressed(button["callback_data"])
    assert pressed is not None
    key = pressed[0]  # (cache key, page)
    fresh_until, entry = cache.decode(redis_client.get(key))
    entry["at"] -= 3600  # the answer is an hour old now
    redis_client.set(key, f"{int(fresh_until * 1000)}:{json.dumps(entry)}", keepttl=True)
    upstreams.script(
        "fx",
        Fault(body=json.dumps({"amount": 9, "base": "EUR", "date": "2026-11-28", "rates": {"GBP": 7.77}})),
    )
    assert _press(telegram, chat, answer, button["callback_data"]) == "Refreshing…"
    assert telegram.wait_for(lambda: telegram.messages(chat.chat_id, method="editMessageText"), 10)
    [edit] = telegram.messages(chat.chat_id, method="editMessageText")
    assert edit.message_id == answer.message_id
    assert edit.text == "9.00 EUR = 7.77 GBP (ECB rate of Nov 28, 2026)"
    assert "reply_markup" in edit.params, "the refreshed answer keeps its button"
    chat.assert_no_reply()  # edited in place: no new message
    assert upstreams.count("fx") == 2


def test_a_button_whose_answer_is_gone_says_so(
    make_tg_chat: Any, polling_bot: BotProcess, telegram: Any
) -> None:
    chat = make_tg_chat()
    chat.send("/ping")
    chat.reply()
    sent = telegram.messages(chat.chat_id)[-1]
    assert (
        _press(telegram, chat, sent, "r:fx:" + "0" * 24) == "This button has expired: send the command again."
    )
    assert _press(telegram, chat, sent, "something else") == "", "not ours: only the spinner stops"
    chat.assert_no_reply()


def test_more_shows_the_next_page_of_reviews_in_place(
    make_tg_chat: Any, polling_bot: BotProcess, telegram: Any, upstreams: Any
) -> None:
    chat = make_tg_chat()
    chat.send("/reviews pizza in Naples")
    first = chat.reply(timeout=20).splitlines()
    assert (
        first[0] == "Reviews for pizza in naples:"
        and first[1].startswith("1. ")
        and first[5].startswith("5. ")
    )
    answer = telegram.messages(chat.chat_id)[-1]
    [buttons] = json.loads(answer.params["reply_markup"])["inline_keyboard"]
    assert [b["text"] for b in buttons] == ["Refresh", "More"]
    assert _press(telegram, chat, answer, buttons[1]["callback_data"]) == ""
    assert telegram.wait_for(lambda: telegram.messages(chat.chat_id, method="editMessageText"), 10)
    [edit] = telegram.messages(chat.chat_id, method="editMessageText")
    assert edit.message_id == answer.message_id
    assert edit.text.splitlines() == [
        "Reviews for pizza in naples:",
        "6. Pizzeria Da Attilio — 4.0★ from 900 reviews (Google)",
        "7. Pizzeria Di Matteo — 3.9★ from 700 reviews (Google)",
    ]
    [[last]] = json.loads(edit.params["reply_markup"])["inline_keyboard"]
    assert last["text"] == "Refresh", "the last page has no More"
    assert [upstreams.count(s) for s in ("yelp", "foursquare", "google")] == [1, 1, 1], (
        "pages come from the cache"
    )
    chat.assert_no_reply()


def test_presses_are_rate_limited_like_messages(
    make_tg_chat: Any, polling_bot: BotProcess, telegram: Any
) -> None:
    chat = make_tg_chat()
    chat.send("/fx 3 CHF JPY")
    chat.reply()
    answer = telegram.messages(chat.chat_id)[-1]
    [[refresh]] = json.loads(answer.params["reply_markup"])["inline_keyboard"]
    notes = [_press(telegram, chat, answer, refresh["callback_data"]) for _ in range(5)]
    # The message used one of the user's burst of 5: the fifth press is told to slow down.
    assert notes[:4] == ["Up to date."] * 4
    assert notes[4].startswith("You are sending too fast. Please try again in")


@pytest.mark.parametrize(("status", "why"), [(403, "blocked"), (400, "gone")])
def test_a_subscription_to_a_chat_that_refuses_the_bot_pauses(
    make_tg_chat: Any, polling_bot: BotProcess, telegram: Any, redis_client: Any, status: int, why: str
) -> None:
    """403: the user blocked the bot; 400 "chat not found": the chat was deleted or left."""
    from tasks.subscriptions import subscriptions_tick

    chat = make_tg_chat()
    chat.send("/daily fx 4 EUR USD at 09:00")
    sub_id = re.search(r"\(#(\d+)\)", chat.reply())[1]  # type: ignore[index]
    telegram.fail("sendMessage", status)
    redis_client.zadd(keys.SUBSCRIPTIONS_DUE, {sub_id: 0})
    assert subscriptions_tick() == 1
    assert wait_until(lambda: redis_client.hget(keys.subscription(sub_id), "state") == f"paused:{why}", 10)
    assert redis_client.zscore(keys.SUBSCRIPTIONS_DUE, sub_id) is None, "no more ticks for it"
    chat.send("/subscriptions")
    assert chat.reply().splitlines()[1] == f"#{sub_id} daily /fx 4 EUR USD at 09:00 (UTC) — paused: {why}"
