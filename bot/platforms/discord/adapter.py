"""Discord, bot-process side: `DiscordAdapter` runs discord.py (one shard, or a chosen set of
shards), syncs the registry as slash commands with typed options, and answers interactions.
Discord kills an interaction that is not acknowledged within 3 seconds: a hit is answered in
the initial response; a miss is deferred ("thinking…") before it is queued, and the worker
edits the answer in (sender.py). Rendering rules are in render.py.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.utils import MISSING

from bot.commands import registry
from bot.core import i18n, keys
from bot.core.i18n import t
from bot.core.request import Request
from bot.ops import sentry
from bot.pipeline import Outcome, Pipeline, parse_command
from bot.platforms.discord.budget import global_bucket
from bot.platforms.discord.render import PLATFORM, split
from config import Settings

log = logging.getLogger(__name__)

OPTION_TYPES = {"string": 3, "number": 10, "user": 6}
ALREADY_ACKNOWLEDGED = 40060  # Discord's error code for a second response to an interaction


def _localized(text: str, limit: int) -> dict[str, str]:
    """`description_localizations`: the text in each language we have but the source one
    (Discord's locale codes for German and French are the bare language)."""
    return {lang: i18n.translate(text, lang)[:limit] for lang in i18n.LANGUAGES if lang != i18n.SOURCE}


def command_payloads() -> list[dict[str, Any]]:
    """The registry as Discord application commands (CHAT_INPUT, typed described options),
    described in every language we have."""
    return [
        {
            "name": command.name,
            "type": 1,
            "description": command.help[:100],
            "description_localizations": _localized(command.help, 100),
            # "0": hidden from everyone but server admins; the pipeline still checks ADMINS.
            **({"default_member_permissions": "0"} if command.is_admin else {}),
            "options": [
                {
                    "type": OPTION_TYPES[option.kind],
                    "name": option.name,
                    "description": option.description[:100],
                    "description_localizations": _localized(option.description, 100),
                    "required": option.required,
                    **({"autocomplete": True} if option.suggest else {}),
                }
                for option in command.options
            ],
        }
        for command in registry.commands(admin=None)
    ]


def _option_text(command_name: str, data: dict[str, Any]) -> str:
    """Slash options back into argument text, in declared order, for the shared parser."""
    given = {o.get("name"): o.get("value") for o in data.get("options") or [] if isinstance(o, dict)}
    command = registry.get(command_name)
    order = [o.name for o in command.options] if command else list(given)
    return " ".join(_plain(given[name]) for name in order if given.get(name) is not None)


async def _respond(interaction: discord.Interaction, content: str, ephemeral: bool, view: Any) -> None:
    """The interaction's one response, sent again once if the connection broke before Discord
    answered (aiohttp: "server disconnected", a reset keep-alive connection): the user would
    otherwise see "The application did not respond". discord.py retries only its own
    connection resets. If the first one did reach Discord, the second is refused as already
    acknowledged, and the user has the answer."""
    try:
        await interaction.response.send_message(content, ephemeral=ephemeral, view=view)
    except aiohttp.ClientConnectionError as exc:
        log.warning("interaction response: %s; sending it again", type(exc).__name__)
        try:
            await interaction.response.send_message(content, ephemeral=ephemeral, view=view)
        except discord.HTTPException as again:
            if again.code != ALREADY_ACKNOWLEDGED:
                raise


def _request(
    interaction: discord.Interaction, command: str, args: str, extra: dict[str, Any] | None = None
) -> Request:
    """An interaction as a Request: a slash command, or a button press (`extra`)."""
    return Request(
        platform=PLATFORM,
        chat=str(interaction.channel_id),
        user=str(interaction.user.id),
        request_id=f"{PLATFORM}:{interaction.id}",
        command=command,
        args=args,
        meta={
            "kind": "interaction",
            "application_id": str(interaction.application_id),
            "token": interaction.token,
            "created_at": interaction.created_at.timestamp(),
            # Always deferred before anything is queued (a command when it misses, a press at
            # once), so a worker — or a coalesced lookup's fan-out — may edit @original.
            "deferred": True,
            **(extra or {}),
        },
        received_at=time.time(),
        locale=interaction.locale.value,  # the user's Discord language ("de", "en-US")
    )


def _view(buttons: tuple[tuple[object, str], ...]) -> discord.ui.View | None:
    """The reply's buttons for discord.py to send. Stopped at once: discord.py then keeps no
    state for it (presses come to on_interaction, from any process, after any restart)."""
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for label, data in buttons:
        style = discord.ButtonStyle.secondary
        view.add_item(discord.ui.Button(label=str(label)[:80], custom_id=data, style=style))
    view.stop()
    return view


def _plain(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class DiscordAdapter:
    """connect (login, sync commands, gateway) → listen (interactions, prefix messages) →
    disconnect."""

    def __init__(self, settings: Settings, pipeline: Pipeline):
        self.settings = settings
        self.pipeline = pipeline
        # discord.py reads both when each route / connection is made: set before start.
        discord.http.Route.BASE = settings.DISCORD_API_URL.rstrip("/")
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.DISCORD_GATEWAY_URL)
        prefix = bool(settings.DISCORD_PREFIX)
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = prefix
        intents.dm_messages = prefix
        intents.message_content = prefix  # privileged: enable it in the developer portal
        options: dict[str, Any] = {
            "intents": intents,
            "allowed_mentions": discord.AllowedMentions.none(),
            "chunk_guilds_at_startup": False,
        }
        self.client: discord.Client
        if settings.DISCORD_SHARD_COUNT:
            if settings.discord_shard_ids:
                options["shard_ids"] = settings.discord_shard_ids
            self.client = discord.AutoShardedClient(
                shard_count=settings.DISCORD_SHARD_COUNT,
                **options,
            )
        else:
            self.client = discord.Client(**options)
        self.client.event(self.on_interaction)
        self.client.event(self.on_message)
        self.client.event(self.on_error)
        self._runner: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        await self.client.login(self.settings.DISCORD_TOKEN.get_secret_value())
        await self.sync_commands()
        self._runner = asyncio.create_task(self.client.connect(reconnect=True))
        self._runner.add_done_callback(self._runner_done)
        log.info("discord: connected as %s", self.client.user)

    async def sync_commands(self) -> None:
        """To the guilds in DISCORD_GUILD_IDS (instant, for development), else globally."""
        application_id = self.client.application_id
        assert application_id is not None
        payload = command_payloads()
        guilds = self.settings.discord_guild_ids
        for guild in guilds:
            await self.client.http.bulk_upsert_guild_commands(application_id, guild, payload)
        if not guilds:
            await self.client.http.bulk_upsert_global_commands(application_id, payload)

    def _runner_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("discord: gateway connection ended: %r", task.exception())

    async def disconnect(self) -> None:
        await self.client.close()
        if self._runner is not None:
            await asyncio.gather(self._runner, return_exceptions=True)

    def routes(self) -> list[Any]:
        return []

    def connected(self) -> bool:
        """For /readyz: logged in, and every shard of this process has its gateway."""
        return self.client.is_ready() and not self.client.is_closed()

    async def on_error(self, event: str, *args: Any, **kwargs: Any) -> None:
        log.exception("discord: error in %s", event)
        error = sys.exc_info()[1]
        if error is not None:
            sentry.capture(error, platform=PLATFORM)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type == discord.InteractionType.autocomplete:
            await self._autocomplete(interaction)
            return
        if interaction.type == discord.InteractionType.component:
            await self._on_press(interaction)
            return
        if interaction.type != discord.InteractionType.application_command:
            return
        data: dict[str, Any] = dict(interaction.data or {})
        name = str(data.get("name", ""))
        request = _request(interaction, name.lower(), _option_text(name, data))

        async def defer() -> None:
            await interaction.response.defer(thinking=True)

        async def answer(outcome: Outcome) -> None:
            # An interaction must be answered (else the user sees "interaction failed"), and
            # its responses are exempt from the bot's rate limit: a flooder told already gets
            # the quiet reply, which only they see.
            reply = outcome.reply or outcome.quiet
            if reply is None:
                return
            parts = split(reply.shown)
            only_them = reply.ephemeral or reply.private  # admin answers: never the whole channel
            # The buttons go under the last part.
            views = [MISSING] * (len(parts) - 1) + [_view(reply.buttons) or MISSING]
            try:
                if interaction.response.is_done():  # deferred, then the queue was unavailable
                    await interaction.edit_original_response(content=parts[0], view=views[0])
                else:
                    await _respond(interaction, parts[0], only_them, views[0])
                for part, view in zip(parts[1:], views[1:], strict=True):
                    await interaction.followup.send(part, ephemeral=only_them, view=view)
            except discord.HTTPException as exc:
                log.warning("%s: could not answer the interaction: %s", request.request_id, exc.status)

        await self.pipeline.handle(request, before_queue=defer, answer=answer)

    async def _on_press(self, interaction: discord.Interaction) -> None:
        """A Refresh button pressed: acknowledged at once with a deferred update (Discord's 3 s),
        then through the gate like a command. A cached answer younger than REFRESH_FLOOR is
        put in place here; an older one is looked up again and the worker edits the message
        (the press's @original is the message the button is on); notes only the presser sees."""
        data: dict[str, Any] = dict(interaction.data or {})
        button = keys.pressed(str(data.get("custom_id", "")))
        try:
            await interaction.response.defer()  # type 6: "I'll update this message"
        except discord.HTTPException as exc:
            log.info("discord: a button press not acknowledged: %s", exc.status)
            return
        if button is None:
            return  # not a button of ours
        cache_key, page = button
        # "More" names the page to show; Refresh, page 0, none.
        extra = {"refresh": True, "cache_key": cache_key, **({"page": page} if page else {})}
        request = _request(interaction, cache_key.split(":")[1], "", extra)

        async def answer(outcome: Outcome) -> None:
            reply = outcome.reply or outcome.quiet
            if reply is None:
                return
            try:
                if reply.buttons:  # the cached answer, in place
                    view = _view(reply.buttons) or MISSING
                    await interaction.edit_original_response(content=split(reply.shown)[0], view=view)
                else:  # too fast, expired, banned…: a note only the presser sees
                    await interaction.followup.send(reply.shown, ephemeral=True)
            except discord.HTTPException as exc:
                log.warning("%s: could not answer the press: %s", request.request_id, exc.status)

        await self.pipeline.handle(request, answer=answer)

    async def _autocomplete(self, interaction: discord.Interaction) -> None:
        """Values offered as the user types an option (`/fx` currencies, `/weather` places):
        answered from Redis within Discord's 3 s, an empty list rather than none."""
        data: dict[str, Any] = dict(interaction.data or {})
        command = registry.get(str(data.get("name", "")))
        options = [o for o in data.get("options") or [] if isinstance(o, dict)]
        focused = next((o for o in options if o.get("focused")), None)
        declared = {o.name: o for o in command.options} if command else {}
        option = declared.get(str(focused.get("name"))) if focused else None
        choices: list[tuple[str, str]] = []
        if option is not None and option.suggest and focused is not None:
            choices = await self.pipeline.suggest(option.suggest, str(focused.get("value", "")))
        try:
            await interaction.response.autocomplete(
                [discord.app_commands.Choice(name=label, value=value) for label, value in choices]
            )
        except discord.HTTPException as exc:  # too late, or Discord refused: nothing to retry
            log.info("discord: autocomplete not answered: %s", exc.status)

    async def on_message(self, message: discord.Message) -> None:
        """Prefix commands (`!fx 1 EUR USD`), when DISCORD_PREFIX is set."""
        prefix = self.settings.DISCORD_PREFIX
        if not prefix or message.author.bot or not message.content.startswith(prefix):
            return
        parsed = parse_command("/" + message.content[len(prefix) :])
        if not parsed.command:
            return
        request = Request(
            platform=PLATFORM,
            chat=str(message.channel.id),
            user=str(message.author.id),
            request_id=f"{PLATFORM}:m{message.id}",
            command=parsed.command,
            args=parsed.args,
            meta={"kind": "message", "message_id": str(message.id)},
            received_at=time.time(),
        )

        async def answer(outcome: Outcome) -> None:
            try:
                if outcome.reply is not None and outcome.reply.private and message.guild is not None:
                    await self._answer_privately(message, outcome.reply.shown, outcome.language)
                elif outcome.reply is not None:
                    first, *rest = split(outcome.reply.shown)
                    await message.channel.send(first, reference=message, mention_author=False)
                    for part in rest:
                        await message.channel.send(part)
                elif outcome.queued:
                    await message.channel.typing()
            except discord.HTTPException as exc:
                log.warning("%s: could not answer the message: %s", request.request_id, exc.status)

        await self.pipeline.handle(request, outbound=(global_bucket(self.settings),), answer=answer)

    async def _answer_privately(self, message: discord.Message, text: str, language: str) -> None:
        """An admin answer typed as a prefix command in a server channel goes by direct
        message; the channel learns only where it went, or that direct messages are closed."""
        try:
            for part in split(text):
                await message.author.send(part)
            note = t("Sent you the answer in a direct message.")
        except discord.Forbidden:
            note = t("I cannot send you direct messages: allow them from server members, then try again.")
        await message.channel.send(i18n.render(note, language), reference=message, mention_author=False)
