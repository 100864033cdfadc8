"""The command registry: a command is declared once, with a decorator, and everything else follows.

    @lookup("fx", help=..., usage=..., parse=..., ttl_setting=..., provider_name=...)
    def fx(params, upstream) -> str: ...          # runs in a worker

    @fan_out("reviews", ..., sources=..., merge=..., enabled=...)
    def fetch(source, params, upstream) -> list: ...   # one worker task per source, then merge

    @local("ping", help=..., usage="/ping")
    def ping(params, is_admin) -> str: ...         # answered in the bot process

    @personal("lang", help=..., usage=...)
    async def lang(redis, request, params) -> Message: ...   # the asker's own settings

    @admin("ban", help=..., usage=..., options=...)
    async def ban(ctx, params) -> str: ...         # admins only, audited

`/help`, Telegram's command menu and Discord's slash commands are generated from the registry;
the gate, the tasks and the cache use it to find what to do. `help` and option descriptions
are catalog msgids (mark them `N_("…")`): menus and /help show them in the reader's language.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from bot.core import i18n, keys
from bot.core.i18n import Message

if TYPE_CHECKING:
    from bot.core.request import Request
    from bot.upstream.client import Upstream
    from config import Settings

Params = dict[str, Any]
Parser = Callable[[str], Params]
Provider = Callable[[Params, "Upstream"], Message]
LocalAnswer = Callable[[Params, bool], Message]  # (params, asked by an admin)
# (async Redis client, the request, params): the user's own settings, kept in Redis
PersonalHandler = Callable[[Any, "Request", Params], Awaitable[Message]]
AdminHandler = Callable[[Any, Params], Awaitable[str]]  # (bot.commands.admin.AdminContext, params)
SourceFetch = Callable[[str, Params, "Upstream"], Any]  # (source, params, upstream) -> what merge takes
Merge = Callable[[list[dict[str, Any]], Params], tuple[Message, bool]]  # -> (text, anything answered)
F = TypeVar("F", bound=Callable[..., Any])

MAX_ARGS_LENGTH = 500  # longer input is refused before it reaches a parser, cache key or log


@dataclass(frozen=True)
class Option:
    """A typed, described argument, for platforms that show a form (Discord slash commands).
    The values are joined in order into the argument text, so the same parser checks them."""

    name: str
    description: str
    kind: str = "string"  # "string", "number" or "user" (Discord shows a user picker)
    required: bool = True
    suggest: str = ""  # a suggestion source (`@suggestions`): Discord offers values as the user types


class UsageError(ValueError):
    """Bad arguments; the message is shown to the user together with the usage line."""

    def __init__(self, message: Message):
        super().__init__(i18n.render(message, i18n.SOURCE))  # str(error): the English text
        self.message = message


@dataclass(frozen=True)
class FanOut:
    """A lookup asked of several sources in parallel (one worker task each, with its own
    retries, breaker and quota), whose results `merge` combines into one answer."""

    sources: tuple[str, ...]
    fetch: SourceFetch
    merge: Merge
    enabled: Callable[[Settings], list[str]]  # the sources configured (API keys set)
    none_enabled: Message  # the answer when no source is configured


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    usage: str
    parse: Parser
    provider: Provider | None = None  # runs in a worker
    fan_out: FanOut | None = None  # runs in workers, one task per source
    local: LocalAnswer | None = None  # answered in the bot process, no upstream, no cache
    admin: AdminHandler | None = None  # admins only; checked server-side on every call
    personal: PersonalHandler | None = None  # the asker's own settings (/lang), in the bot process
    ttl_setting: str = ""  # the name of the Settings field holding the cache TTL
    provider_name: str = ""  # shown to users when the upstream fails ("Wikipedia")
    options: tuple[Option, ...] = ()
    breaker: str = ""  # the upstream's breaker the gate checks (answers at once while open)
    # The answer's argument holding a number users may /watch ("converted": an fx amount).
    watch: str = ""

    @property
    def is_lookup(self) -> bool:
        return self.provider is not None or self.fan_out is not None

    @property
    def is_admin(self) -> bool:
        return self.admin is not None

    def ttl(self) -> int:
        from config import get_settings

        return int(getattr(get_settings(), self.ttl_setting)) if self.ttl_setting else 0

    def cache_key(self, params: Params) -> str:
        """Normalised parameters → a bounded key, so `/fx 1 eur usd` and `/fx 1 EUR USD` share it."""
        blob = json.dumps(params, sort_keys=True, ensure_ascii=True, default=str)
        return keys.cache(self.name, hashlib.sha256(blob.encode()).hexdigest()[:24])

    def run_parser(self, args: str) -> Params:
        if len(args) > MAX_ARGS_LENGTH:
            raise UsageError(f"That is too long ({len(args)} characters; at most {MAX_ARGS_LENGTH}).")
        return self.parse(args)


REGISTRY: dict[str, Command] = {}

Suggest = Callable[[str, "Upstream"], list[tuple[str, str]]]  # (typed text, upstream) -> (label, value)


@dataclass(frozen=True)
class Suggestions:
    """Values offered while a user types an option (Discord autocomplete). Fetched by a worker
    (through the upstream's breaker and quota) into Redis; the bot process answers only from
    there, within Discord's 3 s, with what is cached or nothing."""

    name: str
    fetch: Suggest
    per_query: bool  # asked per typed text (places); else one list, filtered by the bot (currencies)

    def pick(self, items: list[list[str]], typed: str, limit: int = 25) -> list[tuple[str, str]]:
        """The cached (label, value) pairs that fit what was typed: values starting with it
        first, then labels containing it."""
        if self.per_query:
            return [(label, value) for label, value in items][:limit]
        starts = [(label, value) for label, value in items if value.casefold().startswith(typed)]
        contains = [
            (label, value)
            for label, value in items
            if typed in label.casefold() and (label, value) not in starts
        ]
        return (starts + contains)[:limit]


SUGGESTIONS: dict[str, Suggestions] = {}


def suggestions(name: str, *, per_query: bool) -> Callable[[F], F]:
    """Declare a suggestion source: decorate the function (run by a worker) that fetches it."""

    def decorate(fetch: F) -> F:
        if name in SUGGESTIONS:
            raise ValueError(f"suggestions {name!r} are declared twice")
        SUGGESTIONS[name] = Suggestions(name, fetch, per_query)
        return fetch

    return decorate


def register(command: Command) -> Command:
    if command.name in REGISTRY:
        raise ValueError(f"command /{command.name} is declared twice")
    answers = (command.provider, command.fan_out, command.local, command.admin, command.personal)
    if sum(x is not None for x in answers) != 1:
        raise ValueError(f"command /{command.name} needs exactly one way to answer")
    REGISTRY[command.name] = command
    return command


def no_args(args: str) -> Params:
    return {}


def words(args: str) -> Params:
    return {"words": args.split()}


def _declaring(answer: str, **fields: Any) -> Callable[[F], F]:
    """The decorator each declaration returns: register a Command whose `answer` field is
    the decorated function."""

    def decorate(function: F) -> F:
        register(Command(**{**fields, answer: function}))
        return function

    return decorate


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
    watch: str = "",
) -> Callable[[F], F]:
    """Declare a lookup: decorate its provider function (which runs in a Celery worker).
    `watch`: the name of the answer's argument holding a number users may /watch."""
    return _declaring(
        "provider", name=name, help=help, usage=usage, parse=parse, ttl_setting=ttl_setting,
        provider_name=provider_name, options=options, breaker=breaker, watch=watch,
    )  # fmt: skip


def fan_out(
    name: str,
    *,
    help: str,
    usage: str,
    parse: Parser,
    ttl_setting: str,
    provider_name: str,
    sources: tuple[str, ...],
    merge: Merge,
    enabled: Callable[[Settings], list[str]],
    none_enabled: Message,
    options: tuple[Option, ...] = (),
) -> Callable[[F], F]:
    """Declare a lookup asked of several sources: decorate the function that asks one."""

    def decorate(fetch: F) -> F:
        register(
            Command(name, help, usage, parse, fan_out=FanOut(sources, fetch, merge, enabled, none_enabled),
                    ttl_setting=ttl_setting, provider_name=provider_name, options=options)
        )  # fmt: skip
        return fetch

    return decorate


def local(
    name: str, *, help: str, usage: str, parse: Parser = no_args, options: tuple[Option, ...] = ()
) -> Callable[[F], F]:
    """Declare a command the bot process answers itself: no upstream, no cache, no task."""
    return _declaring("local", name=name, help=help, usage=usage, parse=parse, options=options)


def personal(
    name: str, *, help: str, usage: str, parse: Parser = words, options: tuple[Option, ...] = ()
) -> Callable[[F], F]:
    """Declare a command about the asker's own settings, kept in Redis (their language)."""
    return _declaring("personal", name=name, help=help, usage=usage, parse=parse, options=options)


def admin(
    name: str, *, help: str, usage: str, parse: Parser = words, options: tuple[Option, ...] = ()
) -> Callable[[F], F]:
    """Declare an admin command. The pipeline checks ADMINS on every call and audits it."""
    return _declaring("admin", name=name, help=help, usage=usage, parse=parse, options=options)


def get(name: str) -> Command | None:
    return REGISTRY.get(name)


def commands(admin: bool | None = False) -> list[Command]:
    """User commands by default; `admin=True` only admin commands; `None` all of them.
    (The declarations are imported by `bot/commands/__init__.py`, so any import of this
    module sees them all.)"""
    return sorted(
        (c for c in REGISTRY.values() if admin is None or c.is_admin == admin), key=lambda c: c.name
    )


def breakers() -> set[str]:
    """Every upstream with a circuit breaker: the commands' own, and each fan-out source's."""
    names = {c.breaker for c in REGISTRY.values() if c.breaker}
    return names | {source for c in REGISTRY.values() if c.fan_out for source in c.fan_out.sources}
