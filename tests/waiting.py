"""Waiting in tests: for an event where there is one, else polling with a timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll until `predicate()` is truthy; fail the test with a clear message on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(min(interval, remaining))  # the poll interval of this helper


class Recorder:
    """Shared state of an emulator, guarded by one re-entrant lock; every change notifies,
    so tests wait for what they expect instead of sleeping."""

    def __init__(self) -> None:
        # Re-entrant: wait_for() calls predicates that read state under the same lock.
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)

    def notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[], Any], timeout: float) -> Any:
        """Wait until `predicate()` (called under the lock) is truthy; woken on every change.
        Returns the last value of the predicate (falsy on timeout)."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)
