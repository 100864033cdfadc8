"""Commands answered by the bot itself, without any upstream."""

from __future__ import annotations

from bot.registry import Command, Params, commands, no_args, register


def _ping(params: Params) -> str:
    return "pong"


def _help(params: Params) -> str:
    lines = ["Commands:"]
    lines += [f"{c.usage} — {c.help}" for c in commands()]
    return "\n".join(lines)


register(Command("ping", "check that the bot is alive", "/ping", no_args, local=_ping))
register(Command("help", "list the commands", "/help", no_args, local=_help))
