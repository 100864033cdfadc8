"""Bot processes on the Discord emulator, and a chat to type into."""

from __future__ import annotations

import os
from typing import Any

from bot.commands import registry
from bot.pipeline import parse_command
from tests.botprocess import BotProcess
from tests.emulators.discord import DiscordEmulator, Event, Interaction

TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAx.discord-test.token_0123456789"


def discord_bot(
    emulator: DiscordEmulator, extra_env: dict[str, str] | None = None, shards: int = 1
) -> BotProcess:
    """A bot process on the Discord emulator; started once its shards have identified."""
    env = {
        **os.environ,
        "DISCORD_TOKEN": TOKEN,
        "DISCORD_API_URL": emulator.api_url,
        "DISCORD_GATEWAY_URL": emulator.gateway_url,
        **(extra_env or {}),
    }
    bot = BotProcess(env, lambda: len(emulator.identifies), emulator.wait_for)
    bot.expected_connections = shards
    return bot


def slash_options(text: str) -> tuple[str, list[dict[str, Any]]]:
    """What a Discord client sends for `/fx 1 EUR USD`: the command and typed options."""
    parsed = parse_command(text)
    command = registry.get(parsed.command)
    if command is None or not command.options:
        return parsed.command, []
    values = parsed.args.split(maxsplit=len(command.options) - 1) if parsed.args else []
    options = []
    for option, value in zip(command.options, values, strict=False):
        typed: Any = value
        if option.kind == "number":
            try:
                typed = float(value) if "." in value else int(value)
            except ValueError:
                typed = value
        options.append({"name": option.name, "type": 10 if option.kind == "number" else 3, "value": typed})
    return parsed.command, options


class DiscordChat:
    """`chat.send("/ping")` then `assert chat.reply() == "pong"`, as slash commands."""

    def __init__(self, emulator: DiscordEmulator, guild_id: int, user_id: int):
        self.emulator = emulator
        self.guild_id = guild_id
        self.user_id = user_id
        self.channel_id = emulator.new_channel()
        self.seen = 0
        self.locale = "en-US"  # the user's Discord language

    def send(self, text: str, age: float = 0.0, again: Interaction | None = None) -> Interaction:
        name, options = slash_options(text)
        return self.emulator.interaction(
            self.guild_id, self.user_id, name, options, age=age, channel_id=self.channel_id, again=again,
            locale=self.locale,
        )  # fmt: skip

    def press(self, custom_id: str, shown: Event) -> Interaction:
        """Press the button `custom_id` under the message `shown` (a button press interaction)."""
        return self.emulator.interaction(
            self.guild_id, self.user_id, "", [], channel_id=self.channel_id, locale=self.locale,
            interaction_type=3, component=(custom_id, shown),
        )  # fmt: skip

    def autocomplete(self, command: str, option: str, typed: str) -> tuple[list[dict[str, Any]], float]:
        """Type `typed` into `/command`'s `option`, as a Discord client asks while one types:
        the choices offered, and how long after the interaction the answer came."""
        options = [{"name": option, "type": 3, "value": typed, "focused": True}]
        interaction = self.emulator.interaction(
            self.guild_id, self.user_id, command, options, channel_id=self.channel_id,
            locale=self.locale, interaction_type=4,
        )  # fmt: skip

        def answered() -> Event | None:
            return next(
                (e for e in self.emulator.of_kind("autocomplete") if e.interaction_id == interaction.id), None
            )

        event = self.emulator.wait_for(answered, 5.0) and answered()
        assert event is not None, f"no autocomplete answer for {command} {option}={typed!r}"
        return list(event.body["data"]["choices"]), event.t - interaction.dispatched_at

    def events(self) -> list[Event]:
        return self.emulator.texts(self.channel_id)

    def reply(self, timeout: float = 15.0) -> str:
        index = self.seen
        if not self.emulator.wait_for(lambda: len(self.events()) > index, timeout):
            raise AssertionError(f"no reply in channel {self.channel_id} within {timeout} s")
        self.seen += 1
        return self.events()[index].content

    def last_event(self) -> Event:
        return self.events()[self.seen - 1]

    def assert_no_reply(self, within: float = 0.5) -> None:
        index = self.seen
        extra = self.emulator.wait_for(lambda: len(self.events()) > index, within)
        assert not extra, f"unexpected extra reply: {[e.content for e in self.events()[index:]]}"
