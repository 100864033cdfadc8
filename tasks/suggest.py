"""The `suggest` task: fetch a suggestion source's values (Discord autocomplete) into Redis.

The bot process answers autocompletes from Redis only (Pipeline.suggest); this fills what it
did not find. One try, no retries: the user has typed on by then, and the next keystroke asks
again. Over the upstream's quota it fetches nothing rather than wait (`quota=` in the source).
"""

from __future__ import annotations

import json
import logging

from bot.commands import registry
from bot.core import keys
from config import get_settings
from tasks.app import app
from tasks.runtime import upstream, worker_redis

log = logging.getLogger(__name__)

MAX_ITEMS = 25  # Discord shows at most 25 choices
EMPTY_TTL = 60  # nothing found (or the upstream failing): ask again after this, not per keystroke


@app.task(name="suggest", ignore_result=True)
def suggest(source_name: str, typed: str) -> None:
    source = registry.SUGGESTIONS.get(source_name)
    if source is None:
        return
    key = keys.suggestions(source_name, typed)
    # Claim the fetch the bot asked for ("1" -> "fetching"): a second copy of this task (a
    # publish retried after a lost reply enqueues a message twice) finds it claimed, or done,
    # and does not ask the upstream again.
    claimed = worker_redis().set(keys.suggestions_pending(key), "fetching", xx=True, get=True, keepttl=True)
    if claimed != b"1":
        return
    try:
        found = source.fetch(typed, upstream())
        # A per-query source's list is what Discord shows; a whole list is filtered later.
        items = [
            [label[:100], value[:100]] for label, value in (found[:MAX_ITEMS] if source.per_query else found)
        ]
    except Exception as exc:  # a failing or busy upstream: nothing offered for a while
        log.info("suggestions %s not fetched: %s", source_name, type(exc).__name__)
        items = []
    ttl = get_settings().SUGGEST_CACHE_TTL if items else EMPTY_TTL
    pipe = worker_redis().pipeline(transaction=False)
    pipe.set(key, json.dumps(items, ensure_ascii=False), ex=ttl)
    pipe.delete(keys.suggestions_pending(key))
    pipe.execute()
