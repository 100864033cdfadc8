"""One package per chat platform, each split in two: `adapter.py` receives messages in the bot
process (with the platform's SDK), `sender.py` sends replies from workers (plain HTTP, no SDK).
`base.py` says what both must provide. This module lists the senders; workers import only it."""

from __future__ import annotations

from bot.platforms.base import Sender
from bot.platforms.console import sender as console
from bot.platforms.discord import sender as discord
from bot.platforms.telegram import sender as telegram

SENDERS: dict[str, Sender] = {"console": console.send, "telegram": telegram.send, "discord": discord.send}


def sender_for(platform: str) -> Sender:
    try:
        return SENDERS[platform]
    except KeyError:
        raise ValueError(f"no sender for platform {platform!r}") from None
