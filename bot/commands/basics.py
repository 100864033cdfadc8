"""Commands answered by the bot itself, without any upstream."""

from __future__ import annotations

from bot.commands.registry import Params, commands, local


@local("ping", help="check that the bot is alive", usage="/ping")
def ping(params: Params, is_admin: bool) -> str:
    return "pong"


@local("help", help="list the commands", usage="/help")
def help_text(params: Params, is_admin: bool) -> str:
    lines = ["Commands:"]
    lines += [f"{c.usage} — {c.help}" for c in commands()]
    if is_admin:
        lines += ["", "Admin commands:"]
        lines += [f"{c.usage} — {c.help}" for c in commands(admin=True)]
    return "\n".join(lines)
