"""Every Redis key the bot and the workers use, and every field of the /stats counters.

Nothing else spells a key: a key written here is found by grep, and two processes that must
agree on one (the gate and the workers, the admin commands and the gate) agree by importing it.
Keys that a Lua script touches together share a `{hash tag}` so that they stay in one slot
should the data ever move to a Redis Cluster.
"""

from __future__ import annotations

import re

# --- admin state: one hash, so the gate reads all of it with one HMGET (gate.lua) ------------
ADMIN = "admin"
MAINTENANCE_FIELD = "maintenance"  # -> the message users get
DEFAULT_LIMIT_FIELD = "limit:*"  # -> "interval_ms:burst" for everyone without their own
AUDIT = "audit"  # stream of admin actions, capped at AUDIT_MAX


def ban_field(user_key: str) -> str:
    return f"ban:{user_key}"  # -> the reason


def noticed_field(user_key: str) -> str:
    return f"noticed:{user_key}"  # set once a banned user was told, so they are told once


def limit_field(user_key: str) -> str:
    return f"limit:{user_key}" if user_key != "*" else DEFAULT_LIMIT_FIELD  # -> "interval_ms:burst"


# --- the message path (gate.lua) --------------------------------------------------------------
def seen(request_id: str) -> str:
    """Set once a request id passed the gate: a redelivered update is dropped."""
    return f"seen:{request_id}"


def rate(user_key: str, lane: str = "") -> str:
    """A user's GCRA state (theoretical arrival time in ms); `lane` "inline": their inline
    queries, which come one per keystroke and have their own, larger budget."""
    return f"rl:{user_key}:{lane}" if lane else f"rl:{user_key}"


def rate_told(user_key: str, lane: str = "") -> str:
    """Set while a limited user has been told when to retry: until then, silence."""
    return f"{rate(user_key, lane)}:told"


SUGGEST_MAX_TYPED = 50


def suggestions(source: str, typed: str) -> str:
    """Values offered while typing (a JSON list of [label, value]); `typed` is "" for a source
    fetched as one list. Typed text is cleaned and at most SUGGEST_MAX_TYPED characters."""
    return f"suggest:{source}:{typed}"


def suggestions_pending(key: str) -> str:
    """Set while a worker fetches `key`: one fetch per key at a time."""
    return f"{key}:pending"


def inline_answered(query_id: str) -> str:
    """Set by whoever answers an inline query first: the worker with the lookup's result, or
    the bot process saying it is still being looked up (a query takes one answer)."""
    return f"inline:{query_id}"


def prefs(user_key: str) -> str:
    """A user's own settings, a hash: "lang" -> their /lang choice. The gate reads it with
    every message, so an answer is in their language without another round trip."""
    return f"prefs:{user_key}"


LANG_FIELD = "lang"
TIMEZONE_FIELD = "tz"  # an IANA time zone ("Europe/Berlin") for /daily times

# --- subscriptions (/watch, /daily) ---------------------------------------------------------
SUBSCRIPTION_IDS = "subs:next_id"  # a counter: every subscription's id, unique for good
SUBSCRIPTIONS_DUE = "subs:due"  # sorted set: subscription id -> when it is next due (unix ms)


def subscription(sub_id: int | str) -> str:
    """One subscription, a hash (bot/commands/subscriptions.py says its fields)."""
    return f"sub:{sub_id}"


def subscriptions_of(user_key: str) -> str:
    """The ids of a user's subscriptions, a set (its size is their count against the cap)."""
    return f"subs:user:{user_key}"


CACHE_PREFIX = "cache:"


def cache(command: str, digest: str) -> str:
    """A lookup's cached answer (format in bot/core/cache.py)."""
    return f"{CACHE_PREFIX}{command}:{digest}"


def cache_pattern(command: str = "") -> str:
    """SCAN pattern for the cached answers of one command, or of all."""
    return f"{CACHE_PREFIX}{command}:*" if command else f"{CACHE_PREFIX}*"


BUTTON_DATA = re.compile(r"^(?:r|m:([1-9])):([a-z0-9_]{1,30}):([0-9a-f]{24})$")


def refresh_data(cache_key: str) -> str:
    """What a Refresh button carries (Telegram callback_data ≤ 64 bytes, Discord custom_id ≤
    100): the answer's cache key, whose entry holds the lookup's parameters."""
    return "r:" + cache_key.removeprefix(CACHE_PREFIX)


def more_data(cache_key: str, page: int) -> str:
    """What a "More" button carries: the answer's cache key and the page to show (1-9)."""
    return f"m:{page}:" + cache_key.removeprefix(CACHE_PREFIX)


def pressed(data: str) -> tuple[str, int] | None:
    """(the cache key, the page to show — 0 for Refresh) a button names, or None for
    anything we did not write."""
    match = BUTTON_DATA.match(data)
    return (cache(match[2], match[3]), int(match[1] or 0)) if match else None


def inflight(cache_key: str) -> str:
    """Set while a lookup for this cache key runs: identical requests wait instead."""
    return f"inflight:{cache_key}"


def waiters(cache_key: str) -> str:
    """Requests coalesced behind the in-flight lookup, answered when it lands."""
    return f"waiters:{cache_key}"


# --- /stats: per-minute counters ----------------------------------------------------------------
def stats(minute: int) -> str:
    """Counters of one minute (epoch minutes): gate outcomes (gate.lua names the fields after
    its outcomes: hit, miss, limited, banned…) and lookup results (`lookup_stat`)."""
    return f"stats:{minute}"


STATS_TTL = 7200  # two hours: /stats reads the last hour
NOTIFIED_STAT = "notified"  # subscription notifications sent, written by workers
LOOKUP_STAT_PREFIX = "lookup:"
LOOKUP_OUTCOMES = ("ok", "not_found", "error", "retry")


def lookup_stat(command: str, outcome: str) -> str:
    """The counter of one lookup result, written by workers and read by /stats."""
    return f"{LOOKUP_STAT_PREFIX}{command}:{outcome}"


def parse_lookup_stat(field: str) -> tuple[str, str] | None:
    """(command, outcome) of a `lookup_stat` field; None for a gate outcome."""
    if not field.startswith(LOOKUP_STAT_PREFIX):
        return None
    command, _, outcome = field[len(LOOKUP_STAT_PREFIX) :].rpartition(":")
    return command, outcome


# --- workers ------------------------------------------------------------------------------------
RUNNING = "lookups:running"  # lookups running in workers right now
BEAT_SEEN = "beat:last_seen"  # unix time of beat's last heartbeat task
DEAD_LETTERS = "deadletters"  # list of JSON entries, newest first
DEAD_LETTERS_MAX = 1000
DEAD_LETTERS_SEEN = "deadletters:last_seen_count"  # the alert's memory of the last count


LEASES = "lookups:leases"  # sorted set: request id -> lease expiry (ms) of a running lookup
LEASED = "lookups:leased"  # hash: request id -> the lookup's arguments, to re-publish it


def landed(request_id: str) -> str:
    """Set once a lookup's reply is out: a late redelivery of its message does nothing."""
    return f"landed:{request_id}"


def delivered(request_id: str) -> str:
    """Hash of the reply parts already sent for a request (part index -> 1)."""
    return f"delivered:{request_id}"


def console_replies(chat: str) -> str:
    """The replies a console session pops (bot/platforms/console)."""
    return f"console:replies:{chat}"


def console_taking(chat: str) -> str:
    """Replies a console session has popped and not yet written (bot/platforms/console)."""
    return f"console:taking:{chat}"


# --- upstreams: breakers and quotas --------------------------------------------------------------
def breaker(provider: str) -> str:
    """The breaker's state hash (state, open_until); the gate reads it too."""
    return f"breaker:{{{provider}}}"


def breaker_fails(provider: str) -> str:
    """The breaker's recent failures (a sorted set of timestamps)."""
    return f"{breaker(provider)}:fails"


def quota_rate(provider: str) -> str:
    return f"quota:{{{provider}}}:rate"


def quota_day(provider: str, day: str) -> str:
    """Calls made on one UTC day (`YYYYMMDD`)."""
    return f"quota:{{{provider}}}:day:{day}"


# --- outbound limits per platform (bot/core/limits.py) --------------------------------------------
def outbound(platform: str, scope: str = "bot", ident: str = "") -> str:
    """A platform's outbound bucket: per bot, per chat, per group, per route…"""
    return f"out:{{{platform}}}:{scope}" + (f":{ident}" if ident else "")
