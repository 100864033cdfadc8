"""The gate: dedupe, bans, maintenance, per-user rate limit and cache, in one round trip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import keys
from bot.request import Request
from config import Settings

SCRIPT = (Path(__file__).with_name("gate.lua")).read_text()


@dataclass(frozen=True)
class Decision:
    outcome: str  # duplicate, banned, banned_silent, maintenance, limited, hit, miss, pass
    value: str = ""

    @property
    def retry_after(self) -> float:
        """For `limited`: seconds until the next message will be accepted."""
        return int(self.value) / 1000 if self.outcome == "limited" else 0.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Gate:
    """Wraps gate.lua for an async redis-py client (EVALSHA; loads the script on NOSCRIPT)."""

    def __init__(self, redis: Any, settings: Settings):
        self.script = redis.register_script(SCRIPT)
        rate = settings.rate
        self.interval_ms = rate.interval_ms
        self.burst = settings.RATE_LIMIT_BURST
        self.dedupe_ttl = settings.DEDUPE_TTL

    def arguments(
        self, request: Request, cache_key: str | None, is_admin: bool = False
    ) -> tuple[list[str], list[Any]]:
        user = request.user_key
        key_list = [
            keys.seen(request.request_id),
            keys.BANNED,
            keys.BAN_NOTICED,
            keys.MAINTENANCE,
            keys.LIMITS,
            keys.rate(user),
            cache_key or keys.seen(request.request_id),
        ]
        args = [
            user,
            self.dedupe_ttl,
            self.interval_ms,
            self.burst,
            "1" if is_admin else "0",
            "1" if cache_key else "0",
        ]
        return key_list, args

    async def check(self, request: Request, cache_key: str | None, is_admin: bool = False) -> Decision:
        key_list, args = self.arguments(request, cache_key, is_admin)
        outcome, value = await self.script(keys=key_list, args=args)
        return Decision(_text(outcome), _text(value))
