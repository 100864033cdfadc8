"""Every Redis key the bot uses, named in one place."""

from __future__ import annotations

# One hash for admin state, so the gate reads all of it with one HMGET:
# "maintenance" -> message; "ban:<user>" -> reason; "noticed:<user>" -> 1;
# "limit:<user>" and "limit:*" -> "interval_ms:burst".
ADMIN = "admin"
MAINTENANCE_FIELD = "maintenance"
DEAD_LETTERS = "deadletters"  # list of JSON entries, newest first
DEAD_LETTERS_MAX = 1000


def ban_field(user_key: str) -> str:
    return f"ban:{user_key}"


def noticed_field(user_key: str) -> str:
    return f"noticed:{user_key}"


def limit_field(user_key: str) -> str:
    return f"limit:{user_key}"


def seen(request_id: str) -> str:
    return f"seen:{request_id}"


def rate(user_key: str) -> str:
    return f"rl:{user_key}"


def delivered(request_id: str) -> str:
    return f"delivered:{request_id}"


def console_replies(chat: str) -> str:
    return f"console:replies:{chat}"


def stats(minute: int) -> str:
    """Counters of one minute (epoch minutes): gate outcomes and lookup results."""
    return f"stats:{minute}"


AUDIT = "audit"  # stream of admin actions, capped
RUNNING = "lookups:running"  # lookups running in workers right now
BEAT_SEEN = "beat:last_seen"  # unix time of beat's last heartbeat task


def inflight(cache_key: str) -> str:
    """Set while a lookup for this cache key runs: identical requests wait instead."""
    return f"inflight:{cache_key}"


def waiters(cache_key: str) -> str:
    """Requests coalesced behind the in-flight lookup, answered when it lands."""
    return f"waiters:{cache_key}"
