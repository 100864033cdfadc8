"""How big the pressure tests run: light by default (`make test`, CI), heavy with `HEAVY=1`
(`make test-heavy`: more requests, more kills, longer floods, more generated inputs)."""

from __future__ import annotations

import os

HEAVY = os.environ.get("HEAVY", "") not in ("", "0")


def scale(light: int, heavy: int) -> int:
    return heavy if HEAVY else light
