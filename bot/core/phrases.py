"""The sentences users read that more than one module says, written once, as Messages
(bot/core/i18n.py): each is rendered in its reader's language when it is sent."""

from __future__ import annotations

import math
import time

from bot.core.i18n import Message, t, tn

UNAVAILABLE = t("The bot is temporarily unavailable. Please try again in a minute.")
HINT = t("Commands start with /. Send /help for the list.")
BLOCKED = t("You are blocked from using this bot.")
NOT_ALLOWED = t("Not allowed: that command is for admins.")
CRASHED = t("Sorry, something went wrong with that lookup. It has been logged.")


def age_text(at: float) -> str:
    """How long ago `at` (unix seconds) was, the way people say it (admin answers: English)."""
    seconds = max(0, int(time.time() - at))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172_800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86_400} days ago"


def ago(at: float) -> Message:
    """`age_text` for users, in their language."""
    seconds = max(0, int(time.time() - at))
    if seconds < 120:
        return t("{n} s ago", n=seconds)
    if seconds < 7200:
        return t("{n} min ago", n=seconds // 60)
    if seconds < 172_800:
        return t("{n} h ago", n=seconds // 3600)
    days = seconds // 86_400
    return tn("{n} day ago", "{n} days ago", days, n=days)


def _seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def provider(name: str) -> Message:
    """An upstream's name as users read it ("Wikipedia"; "Review search" is translated)."""
    return t(name)


def retry_text(seconds: float) -> Message:
    return t("You are sending too fast. Please try again in {n} s.", n=_seconds(seconds))


def unavailable_for(provider_name: str, seconds: float) -> Message:
    return t(
        "{provider} is unavailable right now, try again in {n} s.",
        provider=provider(provider_name),
        n=_seconds(seconds),
    )


def busy(provider_name: str, seconds: float) -> Message:
    return t(
        "{provider} is busy right now. Please try again in {n} s.",
        provider=provider(provider_name),
        n=_seconds(seconds),
    )


def stale_note(at: float, why: Message) -> Message:
    return t("(as of {age}; {why})", age=ago(at), why=why)


def not_answering(provider_name: str) -> Message:
    return t("{provider} is not answering right now", provider=provider(provider_name))


def may_be_outdated(why: Message) -> Message:
    return t("may be outdated — {why}", why=why)


REFRESHING = t("refreshing")


def usage(problem: Message, usage_line: str) -> Message:
    """A usage error and the command's usage line ("/fx AMOUNT FROM TO": not translated)."""
    return [problem, t("Usage: {usage}", usage=usage_line)]
