"""The sentences users read that more than one module says, written once."""

from __future__ import annotations

import math
import time

UNAVAILABLE = "The bot is temporarily unavailable. Please try again in a minute."
HINT = "Commands start with /. Send /help for the list."
BLOCKED = "You are blocked from using this bot."
NOT_ALLOWED = "Not allowed: that command is for admins."
CRASHED = "Sorry, something went wrong with that lookup. It has been logged."


def age_text(at: float) -> str:
    """How long ago `at` (unix seconds) was, the way people say it."""
    seconds = max(0, int(time.time() - at))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172_800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86_400} days ago"


def retry_text(seconds: float) -> str:
    return f"You are sending too fast. Please try again in {max(1, math.ceil(seconds))} s."


def unavailable_for(provider_name: str, seconds: float) -> str:
    return f"{provider_name} is unavailable right now, try again in {max(1, math.ceil(seconds))} s."


def busy(provider_name: str, seconds: float) -> str:
    return f"{provider_name} is busy right now. Please try again in {max(1, math.ceil(seconds))} s."


def stale_note(at: float, why: str) -> str:
    return f"(as of {age_text(at)}; {why})"


def not_answering(provider_name: str) -> str:
    return f"{provider_name} is not answering right now"
