"""Commands answered by the bot itself, without any upstream."""

from __future__ import annotations

from bot.commands.registry import Params, commands, local
from bot.core.i18n import N_, Message, t


@local("ping", help=N_("check that the bot is alive"), usage="/ping")
def ping(params: Params, is_admin: bool) -> Message:
    return "pong"


@local("help", help=N_("list the commands"), usage="/help")
def help_text(params: Params, is_admin: bool) -> Message:
    lines: list[Message] = [t("Commands:")]
    lines += [t("{usage} — {help}", usage=c.usage, help=t(c.help)) for c in commands()]
    if is_admin:  # admin commands are described in English, like the rest of the admin side
        lines += ["", t("Admin commands:")]
        lines += [f"{c.usage} — {c.help}" for c in commands(admin=True)]
    return lines
