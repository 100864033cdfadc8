"""Which function sends a reply for each platform, from a worker.

Each platform module owns its sending; this table is the only place that lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.request import Reply, Request

Sender = Callable[[Any, Request, Reply], None]


def sender_for(platform: str) -> Sender:
    if platform == "console":
        from bot import console

        return console.send
    raise ValueError(f"no sender for platform {platform!r}")
