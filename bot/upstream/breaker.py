"""Circuit breakers per upstream, shared in Redis by every worker (see breaker.lua).

closed → (N failures within the window) → open → (cool-down) → half-open: one probe goes
through, cluster-wide → success closes it, failure opens it again. The gate reads
`open_until` from the same hash, so while a breaker is open users are answered at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.core import keys
from config import Settings

SCRIPT = Path(__file__).with_name("breaker.lua").read_text()


class BreakerOpen(Exception):
    def __init__(self, provider: str, retry_in: float):
        super().__init__(f"{provider} breaker open for {retry_in:.1f}s")
        self.provider = provider
        self.retry_in = retry_in


class Breakers:
    def __init__(self, redis_client: Any, settings: Settings):
        self.script = redis_client.register_script(SCRIPT)
        self.args = [
            settings.BREAKER_FAILURES,
            int(settings.BREAKER_WINDOW * 1000),
            int(settings.BREAKER_COOLDOWN * 1000),
            int((settings.UPSTREAM_CONNECT_TIMEOUT + settings.UPSTREAM_READ_TIMEOUT) * 1000) + 1000,
        ]

    def _run(self, provider: str, op: str) -> tuple[str, float]:
        keys_ = [keys.breaker(provider), keys.breaker_fails(provider)]
        verdict, ms = self.script(keys=keys_, args=[op, *self.args])
        return (verdict.decode() if isinstance(verdict, bytes) else verdict), int(ms) / 1000

    def allow(self, provider: str) -> None:
        """Raise BreakerOpen unless a call may go (closed, or this is the one probe)."""
        verdict, wait = self._run(provider, "allow")
        if verdict == "open":
            raise BreakerOpen(provider, wait)

    def success(self, provider: str) -> None:
        self._run(provider, "success")

    def failure(self, provider: str) -> bool:
        """Record a failure; True when the breaker is (now) open."""
        verdict, _ = self._run(provider, "failure")
        return verdict == "open"
