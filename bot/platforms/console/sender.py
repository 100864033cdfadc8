"""Console, worker side: a reply goes into a Redis list that the console process pops,
exactly once (deliver_once.lua marks and pushes in one step)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.core import keys
from bot.core.request import Reply, Request

DELIVER_ONCE = Path(__file__).with_name("deliver_once.lua").read_text()
REPLY_LIST_TTL = 3600


def send(redis_client: Any, request: Request, reply: Reply) -> None:
    """Worker side: hand the reply to the console process that asked, exactly once."""
    payload = json.dumps({"request_id": request.request_id, "text": reply.shown, "kind": reply.kind})
    script = redis_client.register_script(DELIVER_ONCE)
    script(
        keys=[keys.delivered(request.request_id), keys.console_replies(request.chat)],
        args=[86_400, payload, REPLY_LIST_TTL],
    )
