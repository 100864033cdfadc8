"""A lookup travels chat → gate → Celery → upstream → reply, on real components."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from tests.conftest import Chat, wait_until
from tests.emulators.upstreams import Fault


def test_ping_is_answered_by_the_bot_itself(chat: Chat) -> None:
    chat.send("/ping")
    assert chat.immediate_reply() == "pong"


def test_help_lists_every_command(chat: Chat) -> None:
    chat.send("/help")
    text = chat.immediate_reply()
    for usage in ("/fx AMOUNT FROM TO", "/wiki TOPIC", "/ping", "/help"):
        assert usage in text


def test_unknown_command_gets_a_hint(chat: Chat) -> None:
    chat.send("/weatherr Paris")
    assert "Unknown command /weatherr" in chat.immediate_reply()


def test_plain_text_gets_a_hint(chat: Chat) -> None:
    chat.send("hello bot")
    assert "/help" in chat.immediate_reply()


def test_fx_miss_is_answered_once_by_the_worker(chat: Chat, upstreams) -> None:
    chat.send("/fx 100 USD EUR")
    assert chat.replies.empty(), "a miss is answered by the worker, not at once"
    assert chat.reply() == "100.00 USD = 92.00 EUR (ECB rate of Nov 27, 2026)"
    chat.assert_no_reply()
    assert upstreams.count("fx") == 1


def test_cache_hit_is_answered_by_the_adapter_without_a_task(make_chat, upstreams) -> None:
    first, second = make_chat(), make_chat()
    first.send("/fx 2 eur usd")
    answer = first.reply()
    second.send("/fx 2.00 EUR to USD")  # the same lookup, spelled differently
    assert second.immediate_reply() == answer
    assert upstreams.count("fx") == 1
    second.assert_no_reply()


def test_wiki_summary_has_title_text_and_link(chat: Chat, upstreams) -> None:
    chat.send("/wiki alan turing")
    reply = chat.reply()
    assert reply.startswith("Alan Turing\nAlan Mathison Turing was an English mathematician")
    assert reply.endswith("https://en.wikipedia.org/wiki/Alan_Turing")
    assert "chatbot" in upstreams.user_agents[-1], "Wikimedia asks for a descriptive User-Agent"


def test_unknown_article_is_not_found_and_briefly_cached(make_chat, upstreams) -> None:
    chat = make_chat()
    chat.send("/wiki No Such Article Anywhere")
    assert chat.reply() == "No Wikipedia article named “No Such Article Anywhere”."
    other = make_chat()
    other.send("/wiki no Such Article Anywhere")
    assert "No Wikipedia article" in other.immediate_reply()
    assert upstreams.count("wiki") == 1


def test_transient_failures_are_retried_with_backoff_then_succeed(chat: Chat, upstreams) -> None:
    upstreams.script(
        "fx",
        Fault(status=503),
        Fault(status=429, retry_after=0.4),
        Fault(body="<html>not json</html>"),
    )
    chat.send("/fx 1 GBP EUR")
    assert chat.reply() == "1.00 GBP = 1.17 EUR (ECB rate of Nov 27, 2026)"
    calls = upstreams.calls["fx"]
    assert len(calls) == 4
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[1] >= 0.39, f"Retry-After not honoured: {gaps}"
    assert all(gap >= 0.02 for gap in gaps), f"no backoff between tries: {gaps}"
    chat.assert_no_reply()


def test_a_timeout_is_retried(chat: Chat, upstreams) -> None:
    upstreams.script("wiki", Fault(delay=1.5))  # longer than UPSTREAM_READ_TIMEOUT=1
    chat.send("/wiki Alan Turing")
    assert chat.reply(timeout=20).startswith("Alan Turing")
    assert upstreams.count("wiki") == 2


def test_exhausted_retries_tell_the_user_and_leave_a_dead_letter(chat: Chat, upstreams, redis_client) -> None:
    upstreams.script("fx", *[Fault(status=502)] * 4)
    chat.send("/fx 3 CHF EUR")
    reply = chat.reply()
    assert "Frankfurter is not answering right now (tried 4 times)" in reply
    entries = [json.loads(e) for e in redis_client.lrange("deadletters", 0, -1)]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["attempts"] == 4
    assert entry["kind"] == "http_502"
    assert entry["request"]["command"] == "fx"
    assert entry["params"] == {"amount": "3", "from": "CHF", "to": "EUR"}
    assert upstreams.count("fx") == 4


def test_a_client_error_is_not_retried(chat: Chat, upstreams) -> None:
    upstreams.script("fx", Fault(status=400))
    chat.send("/fx 4 USD EUR")
    assert "Frankfurter could not answer that (http 400)" in chat.reply()
    assert upstreams.count("fx") == 1


def test_unknown_currency_is_a_clear_answer(chat: Chat) -> None:
    chat.send("/fx 1 XXX EUR")
    assert chat.reply() == "Unknown currency: XXX or EUR."


def test_the_same_request_id_is_answered_once(bot_loop, worker, upstreams) -> None:
    """A redelivered update (same id) passes the gate once."""
    from bot.core.request import Request
    from bot.main import make_redis
    from bot.pipeline import Pipeline
    from config import get_settings
    from tasks.enqueue import CeleryQueue

    settings = get_settings()

    async def twice() -> list[str]:
        client = make_redis(settings)
        pipeline = Pipeline(settings, client, CeleryQueue(settings))
        request = Request("console", "dup-chat", "dup-user", "console:dup-1", "ping", "")
        outcomes = [await pipeline.handle(request), await pipeline.handle(request)]
        await client.aclose()
        return [o.decision for o in outcomes]

    assert bot_loop.run(twice()) == ["local", "duplicate"]


def test_flooding_user_is_told_when_to_retry_and_others_are_not_affected(make_chat) -> None:
    flooder, bystander = make_chat(), make_chat()
    replies = []
    for _ in range(6):
        flooder.send("/ping")
        replies.append(flooder.immediate_reply())
    assert replies[:5] == ["pong"] * 5  # RATE_LIMIT_BURST=5
    # 30/minute is one message every 2 s: the next slot opens in at most 2 s.
    assert replies[5] == "You are sending too fast. Please try again in 2 s."
    flooder.send("/ping")  # told already: silence, and nothing queued
    flooder.assert_no_reply(within=0.2)
    assert not flooder.adapter.pending
    bystander.send("/ping")
    assert bystander.immediate_reply() == "pong"


def test_dead_letter_list_is_capped(chat: Chat, upstreams, redis_client) -> None:
    redis_client.lpush("deadletters", *[json.dumps({"id": i}) for i in range(1005)])
    upstreams.script("fx", *[Fault(status=500)] * 4)
    chat.send("/fx 5 USD GBP")
    chat.reply()
    wait_until(lambda: redis_client.llen("deadletters") == 1000)


def _client(**settings: Any) -> Any:
    from bot.upstream.client import Upstream
    from config import get_settings

    return Upstream(get_settings().model_copy(update=settings))


def test_an_upstream_that_trickles_its_body_is_cut_at_the_deadline(upstreams) -> None:
    """requests bounds each wait for a byte, not the answer: a body sent a byte at a time
    would hold a worker thread forever (threads have no time limit). The client reads the
    body against connect + read timeout and gives up."""
    from bot.upstream.client import RetryableError

    upstreams.script("fx", Fault(trickle=0.1))
    client = _client(UPSTREAM_CONNECT_TIMEOUT=0.5, UPSTREAM_READ_TIMEOUT=0.5)
    with pytest.raises(RetryableError) as raised:
        client.get_json("fx", f"{upstreams.url('fx')}/latest", not_found="-")
    assert (raised.value.kind, raised.value.detail) == ("timeout", "body too slow")


def test_an_oversized_upstream_body_is_refused(upstreams) -> None:
    from bot.upstream.client import MAX_BODY, RetryableError

    upstreams.script("fx", Fault(body='{"x": "' + "y" * MAX_BODY + '"}'))
    with pytest.raises(RetryableError) as raised:
        _client().get_json("fx", f"{upstreams.url('fx')}/latest", not_found="-")
    assert (raised.value.kind, raised.value.detail) == ("bad_response", "body too large")


def test_a_worker_runs_many_lookups_at_once(redis_server, upstreams, telegram, make_tg_chat) -> None:
    """The default pool is threads: one worker process waits on many upstream calls at once
    instead of one per process (prefork's 8 processes capped misses at ~8 in flight). More
    than 100 at once: redis-py's default pool stopped there and failed lookups with
    MaxConnectionsError."""
    from tests.stacks import running_stack

    upstreams.gather["fx"] = (110, 20.0)  # every call waits until 110 are in flight at once
    slow = {"WORKER_CONCURRENCY": "150", "UPSTREAM_READ_TIMEOUT": "25"}
    app, broker = f"{redis_server.url}/13", f"{redis_server.url}/14"
    with running_stack(app, broker, telegram, **slow) as (worker, _):
        chats = [make_tg_chat() for _ in range(140)]
        for n, chat in enumerate(chats):
            chat.send(f"/fx {700 + n} EUR USD")  # distinct misses
        for n, chat in enumerate(chats):
            assert chat.reply(timeout=30).startswith(f"{700 + n:.2f} EUR = ")
        assert upstreams.peak["fx"] >= 110, f"at most {upstreams.peak['fx']} upstream calls at once"
        assert "prefork" not in worker.logs() and "MaxConnectionsError" not in worker.logs()
