"""The cache entry format the gate (gate.lua) and the workers share.

`"<fresh_until_ms>:<json>"`: the gate compares the number with the server clock without
parsing JSON; past it an entry is stale but may still be served until the key expires.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bot.core.i18n import Message


def encode(
    text: Message, kind: str, ttl: float, at: float | None = None, params: dict[str, Any] | None = None
) -> str:
    """`text`: the answer as a Message (bot/core/i18n.py), rendered for each reader; `params`:
    the lookup's parameters, so a Refresh button (which carries only the cache key) can run
    it again."""
    now = time.time() if at is None else at
    fresh_until = int((now + ttl) * 1000)
    entry = {"text": text, "kind": kind, "at": now, **({"params": params} if params is not None else {})}
    return f"{fresh_until}:{json.dumps(entry)}"


def decode(raw: bytes | str) -> tuple[float, dict[str, Any]]:
    """(fresh until, as unix seconds; the entry {text, kind, at})."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    fresh_until, _, body = text.partition(":")
    return int(fresh_until) / 1000, json.loads(body)
