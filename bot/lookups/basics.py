"""Commands answered by the bot itself, without any upstream."""

from __future__ import annotations

from bot.registry import Command, Params, commands, no_args, register


def _ping(params: Params, is_admin: bool) -> str:
    return "pong"


def _help(params: Params, is_admin: bool) -> str:
    lines = ["Commands:"]
    lines += [f"{c.usage} — {c.help}" for c in commands()]
    if is_admin:
        lines += ["", "Admin commands:"]
        lines += [f"{c.usage} — {c.help}" for c in commands(admin=True)]
    return "\n".join(lines)


register(Command("ping", "check that the bot is alive", "/ping", no_args, local=_ping))
register(Command("help", "list the commands", "/help", no_args, local=_help))
