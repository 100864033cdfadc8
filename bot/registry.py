"""The command registry: a lookup is declared once, here, and everything else follows.

A declaration gives the name, the help line, the usage text, an argument parser, the cache
TTL and the provider function. `/help`, Telegram's command list and Discord's slash commands
are all generated from it; the gate, the Celery tasks and the cache use it to find what to do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.admin import AdminContext
    from bot.upstream import Upstream

Params = dict[str, Any]
Parser = Callable[[str], Params]
Provider = Callable[[Params, "Upstream"], str]
LocalAnswer = Callable[[Params, bool], str]  # (params, asked by an admin)
AdminHandler = Callable[["AdminContext", Params], Awaitable[str]]

MAX_ARGS_LENGTH = 500  # longer input is refused before it reaches a parser, cache key or log


@dataclass(frozen=True)
class Option:
    """A typed, described argument, for platforms that show a form (Discord slash commands).
    The values are joined in order into the argument text, so the same parser checks them."""

    name: str
    description: str
    kind: str = "string"  # "string", "number" or "user" (Discord shows a user picker)
    required: bool = True


class UsageError(ValueError):
    """Bad arguments; the message is shown to the user together with the usage line."""


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    usage: str
    parse: Parser
    provider: Provider | None = None  # runs in a worker; None for commands answered locally
    local: LocalAnswer | None = None  # answered in the adapter, no upstream, no cache
    admin: AdminHandler | None = None  # admins only; checked server-side on every call
    ttl_setting: str = ""  # the name of the Settings field holding the cache TTL
    provider_name: str = ""  # shown to users when the upstream fails ("Wikipedia")
    options: tuple[Option, ...] = ()
    breaker: str = ""  # the upstream's breaker the gate checks (answers at once while open)
    sources: tuple[str, ...] = ()  # fan-out lookups: the sources asked in parallel (see reviews)

    @property
    def is_lookup(self) -> bool:
        return self.provider is not None

    @property
    def is_admin(self) -> bool:
        return self.admin is not None

    def ttl(self) -> int:
        from config import get_settings

        return int(getattr(get_settings(), self.ttl_setting)) if self.ttl_setting else 0

    def cache_key(self, params: Params) -> str:
        """Normalised parameters → a bounded key, so `/fx 1 eur usd` and `/fx 1 EUR USD` share it."""
        blob = json.dumps(params, sort_keys=True, ensure_ascii=True, default=str)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:24]
        return f"cache:{self.name}:{digest}"

    def run_parser(self, args: str) -> Params:
        if len(args) > MAX_ARGS_LENGTH:
            raise UsageError(f"That is too long ({len(args)} characters; at most {MAX_ARGS_LENGTH}).")
        return self.parse(args)


REGISTRY: dict[str, Command] = {}


def register(command: Command) -> Command:
    if command.name in REGISTRY:
        raise ValueError(f"command /{command.name} is declared twice")
    if sum(x is not None for x in (command.provider, command.local, command.admin)) != 1:
        raise ValueError(f"command /{command.name} needs exactly one of provider=, local= or admin=")
    REGISTRY[command.name] = command
    return command


def lookup(
    name: str,
    *,
    help: str,
    usage: str,
    parse: Parser,
    ttl_setting: str,
    provider_name: str,
    options: tuple[Option, ...] = (),
    breaker: str = "",
    sources: tuple[str, ...] = (),
) -> Callable[[Provider], Provider]:
    """Declare a lookup: decorate its provider function (which runs in a Celery worker)."""

    def decorate(provider: Provider) -> Provider:
        register(
            Command(
                name=name,
                help=help,
                usage=usage,
                parse=parse,
                provider=provider,
                ttl_setting=ttl_setting,
                provider_name=provider_name,
                options=options,
                breaker=breaker,
                sources=sources,
            )
        )
        return provider

    return decorate


def no_args(args: str) -> Params:
    return {}


def get(name: str) -> Command | None:
    load()
    return REGISTRY.get(name)


def commands(admin: bool | None = False) -> list[Command]:
    """User commands by default; `admin=True` only admin commands; `None` all of them."""
    load()
    return sorted(
        (c for c in REGISTRY.values() if admin is None or c.is_admin == admin), key=lambda c: c.name
    )


_loaded = False


def load() -> None:
    """Import the modules that declare commands, once (get() runs on every message)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import bot.admin
    import bot.lookups  # noqa: F401
