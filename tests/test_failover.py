"""Redis Sentinel failover on real servers (issue 18): a primary, a replica and three Sentinels
on loopback (tests/sentinels.py); under steady traffic the primary is SIGKILLed, and the bot
and the worker — gate, cache, limits, broker and result backend all through the Sentinels —
follow the promoted replica by themselves. Users are told "temporarily unavailable"
meanwhile, never nothing."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import wait_until
from tests.sentinels import SERVICE, SentinelSet
from tests.stacks import running_stack

UNAVAILABLE = "The bot is temporarily unavailable. Please try again in a minute."
PACE = 0.1  # seconds between two users' messages: 10 a second
USERS = 60  # 6 s of traffic
KILL_AT = 10  # the primary dies after this many messages (1 s in)


def test_bot_and_worker_follow_a_sentinel_failover_and_nobody_meets_silence(
    telegram: Any, make_tg_chat: Any, upstreams: Any
) -> None:
    cluster = SentinelSet().start()
    primary = f"redis://127.0.0.1:{cluster.primary.port}"  # its host and port unused: the Sentinels tell
    sentinels = {"REDIS_SENTINELS": cluster.addresses, "REDIS_SENTINEL_SERVICE": SERVICE}
    try:
        with running_stack(f"{primary}/0", f"{primary}/1", telegram, **sentinels) as (worker, bot):
            chats = [make_tg_chat() for _ in range(USERS)]  # one message each: nobody is rate-limited
            sent_at: list[float] = []
            killed = 0.0
            started = time.monotonic()
            for n, chat in enumerate(chats):
                wait = started + n * PACE - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # pacing the traffic, not waiting for a result
                if n == KILL_AT:
                    cluster.kill_primary()
                    killed = time.monotonic()
                chat.send(f"/fx {100 + n} EUR USD")  # a miss each: bot, gate, broker, worker, cache
                sent_at.append(time.monotonic())
            wait_until(lambda: all(telegram.messages(chat.chat_id) for chat in chats), timeout=45)
            replies = [[m.text for m in telegram.messages(chat.chat_id)] for chat in chats]
            lost = [n for n, texts in enumerate(replies) if not texts]
            answered = [
                n for n, texts in enumerate(replies) if texts and texts[0].startswith(f"{100 + n}.00 EUR = ")
            ]
            told = [n for n, texts in enumerate(replies) if texts == [UNAVAILABLE]]
            first_after = min((n for n in answered if n >= KILL_AT), default=None)
            assert first_after is not None, f"nothing answered after the failover: {replies[KILL_AT:]}"
            print(
                f"\nfailover: {len(answered)} answered, {len(told)} told 'temporarily unavailable', "
                f"{len(lost)} lost; no answers for {sent_at[first_after] - killed:.1f} s "
                f"(sent {first_after - KILL_AT} messages meanwhile)"
            )
            assert not lost, f"users met silence: {lost}"
            assert len(answered) + len(told) == USERS, f"other replies: {replies}"
            assert set(range(KILL_AT)) <= set(answered), "answered before the primary died"
            assert all(n in answered for n in range(first_after, USERS)), (
                "after the failover, every one answered"
            )
            assert cluster.primary_port() == cluster.replica.port  # type: ignore[union-attr]
            for chat in chats:
                chat.reply()
                chat.assert_no_reply(within=0.05)  # nobody told twice
            assert bot.process is not None and bot.process.poll() is None, "the bot crashed"
            assert worker.process is not None and worker.process.poll() is None, "the worker crashed"
    finally:
        cluster.stop()


def test_scripts_missing_after_a_failover_are_loaded_again(make_chat: Any, redis_client: Any) -> None:
    """The server that answers after a failover or a restart need not have our Lua scripts
    in its cache (snapshots do not carry it): every EVALSHA then meets NOSCRIPT once and loads
    its script again — the gate in the bot, the breaker, quota and limits in the worker, the
    console's once-only delivery."""
    chat = make_chat()
    chat.send("/fx 3 EUR JPY")
    assert chat.reply().startswith("3.00 EUR = ")  # every script loaded and used once
    redis_client.script_flush()
    chat.send("/fx 3 EUR JPY")  # a hit: the gate
    assert chat.immediate_reply().startswith("3.00 EUR = ")
    redis_client.script_flush()
    chat.send("/fx 4 EUR JPY")  # a miss: the gate, then the worker's scripts
    assert chat.reply().startswith("4.00 EUR = ")
    chat.assert_no_reply(within=0.1)
