"""The platform-neutral path of every incoming message: parse → gate → answer or queue.

Adapters call `Pipeline.handle(request)` and render what comes back; nothing here knows
about any platform's wire format, and nothing here knows Celery: the task queue is handed in
(bot/core/queue.py; tasks/enqueue.py implements it).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import redis.exceptions

from bot.commands import admin, registry
from bot.commands.registry import Params, UsageError
from bot.core import i18n, keys, phrases
from bot.core.gate import Decision, Gate
from bot.core.i18n import t
from bot.core.limits import Bucket
from bot.core.queue import TaskQueue
from bot.core.request import Reply, Request
from bot.core.text import clean
from bot.ops import logs, metrics
from config import Settings

log = logging.getLogger(__name__)

# Discord drops an autocomplete not answered within 3 s: ours answers within this, whatever
# Redis or the broker do.
SUGGEST_DEADLINE = 2.0
SUGGEST_PENDING_TTL = 30  # a fetch that died frees its key by then
EXPIRED = t("This button has expired: send the command again.")


@functools.lru_cache(maxsize=1024)
def _shown(entry: str, language: str, page: int, cache_key: str) -> Reply:
    """A cached answer (the entry's JSON) as `language` reads it: that page of it, with its
    buttons. Rendering with CLDR formats costs ~0.13 ms, a sixth of a whole cache hit
    (bench/telegram_hits.py): a process renders each entry once a language, and the hits of it
    share the (frozen) reply."""
    cached = json.loads(entry)
    text = cached["text"]
    pages = i18n.page_count(text)
    reply = Reply(i18n.page_of(text, page), cached.get("kind", "answer")).with_buttons(cache_key, page, pages)
    return reply.rendered(language)


@dataclass(frozen=True)
class Outcome:
    """What the adapter should do now: show `reply` (if any); `queued` means a worker will
    answer later, so the adapter may show a typing indicator or placeholder meanwhile."""

    reply: Reply | None
    queued: bool = False
    decision: str = ""
    # Shown only where silence is not an option (a Discord interaction must be answered):
    # the "try again in N s" of a flood the user was already told about.
    quiet: Reply | None = None
    # The language the replies are rendered in: an adapter says its own notes in it too.
    language: str = i18n.SOURCE
    # The reply would read differently for another user (their language): only for inline
    # queries, whose answers Telegram may show to everyone who types the same query.
    personal: bool = True


@dataclass(frozen=True)
class Parsed:
    """A message checked against the registry, before the gate."""

    command: registry.Command | None
    params: Params
    problem: Reply | None  # a usage error to show instead of an answer
    cache_key: str | None  # for a well-formed lookup


@dataclass(frozen=True)
class ParsedCommand:
    command: str  # lower case, without "/" and "@target"; "" for text that is not a command
    args: str
    target: str = ""  # "MyBot" in "/fx@MyBot 1 EUR USD" (groups address one bot this way)


def parse_command(text: str) -> ParsedCommand:
    """`/fx 1 EUR USD` → ("fx", "1 EUR USD"); `/fx@MyBot …` names its target bot."""
    text = text.strip()
    parts = text[1:].split(maxsplit=1) if text.startswith("/") else []
    if not parts:
        return ParsedCommand("", text)
    head, _, target = parts[0].partition("@")
    return ParsedCommand(head.lower(), parts[1].strip() if len(parts) > 1 else "", target)


class Pipeline:
    def __init__(self, settings: Settings, redis_client: Any, queue: TaskQueue):
        self.settings = settings
        self.gate = Gate(redis_client, settings)
        self.redis = redis_client
        self.admins = settings.admins
        self.queue = queue

    async def handle(
        self,
        request: Request,
        before_queue: Callable[[], Awaitable[None]] | None = None,
        outbound: tuple[Bucket, ...] = (),
        answer: Callable[[Outcome], Awaitable[None]] | None = None,
        settle: bool = True,
    ) -> Outcome:
        """Decide what to do with one message, and have the adapter `answer` it: only once
        that is done (or the lookup is queued) is the request id marked done, so a redelivery
        after a crash in between is handled again rather than dropped. `before_queue` runs
        just before a miss is queued (Discord defers the interaction there, so a worker can
        edit the answer in). `outbound`: the platform's buckets for this chat; an answer that
        does not fit them now is handed to a worker, which waits for room (the outcome then
        carries no reply). `settle=False`: the adapter calls `settle` itself, once the answer
        has really left (Telegram's webhook response is written after this returns)."""
        logs.request_id.set(request.request_id)
        outcome = await self._handle(request, before_queue, outbound)
        if outcome.decision == "handling":
            if await self.gate.handled_elsewhere(request.request_id, self.settings.DEDUPE_LEASE):
                return Outcome(None, decision="duplicate")
            log.warning("%s: handled anew: the process that had it went away", request.request_id)
            return await self.handle(request, before_queue, outbound, answer, settle)
        if answer is not None:
            await answer(outcome)
        if settle:
            self.settle(request, outcome)
        # Metric labels and logs name only commands that exist: made-up names would be new
        # Prometheus series without bound, and what users type stays out of logs.
        name = request.command if registry.get(request.command) else "unknown" if request.command else "-"
        metrics.count_message(request.platform, name, outcome.decision)
        log.info("%s /%s → %s", request.platform, name, outcome.decision)
        if outcome.reply is not None and request.received_at:
            metrics.REPLY_LATENCY.labels(request.platform, "immediate").observe(
                time.time() - request.received_at
            )
        return outcome

    def settle(self, request: Request, outcome: Outcome) -> None:
        """The request is answered (or queued): mark it done, so a redelivery is dropped. The
        mark rides on the next round trip to Redis (bot/core/gate.py)."""
        if outcome.decision not in ("duplicate", "unavailable"):
            self.gate.done(request.request_id)

    async def suggest(self, source_name: str, typed: str) -> list[tuple[str, str]]:
        """Values to offer while a user types an option, from Redis only, within
        SUGGEST_DEADLINE: what is cached, or nothing (then a worker fetches it, once, and the
        next keystroke gets it). Never raises: an autocomplete must always be answered."""
        source = registry.SUGGESTIONS.get(source_name)
        typed = clean(typed).casefold()[: keys.SUGGEST_MAX_TYPED]
        if source is None or (source.per_query and len(typed) < 2):
            return []
        key = keys.suggestions(source.name, typed if source.per_query else "")
        try:
            return await asyncio.wait_for(self._suggest(source, key, typed), SUGGEST_DEADLINE)
        except Exception as exc:  # Redis or the broker slow or down: an empty list in time
            log.warning("suggestions for %s unavailable: %r", source.name, exc)
            return []

    async def _suggest(self, source: registry.Suggestions, key: str, typed: str) -> list[tuple[str, str]]:
        cached = await self.redis.get(key)
        if cached is not None:
            return source.pick(json.loads(cached), typed)
        if await self.redis.set(keys.suggestions_pending(key), "1", nx=True, ex=SUGGEST_PENDING_TTL):
            await self.queue.suggest(source.name, typed if source.per_query else "")
        return []

    async def close(self) -> None:
        """At shutdown, before the Redis client closes: the answered requests marked done."""
        await self.gate.close()

    async def _handle(
        self,
        request: Request,
        before_queue: Callable[[], Awaitable[None]] | None,
        outbound: tuple[Bucket, ...],
    ) -> Outcome:
        try:
            parsed, decision = await self._decide(request, outbound)
        except (redis.exceptions.RedisError, OSError) as exc:
            # redis-py 8's repr of an error leaves out Redis' message: log both.
            log.error("%s: gate unavailable: %r (%s)", request.request_id, exc, exc)
            language = i18n.choose(request.locale)
            reply = Reply(phrases.UNAVAILABLE, "error").rendered(language)
            return Outcome(reply, decision="unavailable", language=language)
        # In the asker's language: their /lang choice (the gate read it), else the platform's.
        language = i18n.choose(decision.language, request.locale)
        outcome = await self._answer(request, parsed, decision, language, before_queue)
        if request.meta.get("kind") == "inline" and outcome.reply is not None:
            readings = {i18n.render(outcome.reply.text, other) for other in i18n.LANGUAGES}
            outcome = replace(outcome, personal=len(readings) > 1)
        shown = outcome.reply and outcome.reply.rendered(language)
        quiet = outcome.quiet and outcome.quiet.rendered(language)
        if shown is not outcome.reply or quiet is not outcome.quiet or language != outcome.language:
            outcome = replace(outcome, reply=shown, quiet=quiet, language=language)
        if decision.deferred and outcome.reply is not None:
            # Over the outbound budget: a worker sends it once there is room, never a 429.
            await self.queue.deliver(request, outcome.reply)
            return Outcome(None, decision=outcome.decision)
        return outcome

    async def _decide(self, request: Request, outbound: tuple[Bucket, ...]) -> tuple[Parsed, Decision]:
        """Parse the command, then one gate round trip (even a bad command passes the gate: a
        flood of garbage is limited like any other)."""
        is_admin = request.user_key in self.admins
        command = registry.get(request.command)
        problem: Reply | None = None
        params: Params = {}
        if request.meta.get("refresh"):
            # A Refresh press names the answer by its cache key (the adapter checked its shape);
            # the lookup's parameters come from the cache entry, through the gate.
            if command is None or not command.is_lookup:
                problem = Reply(EXPIRED, "notice", ephemeral=True)
        elif not request.command:
            problem = Reply(phrases.HINT, "usage")
        elif command is None:
            name = request.command[:32]
            problem = Reply(t("Unknown command /{name}. Send /help for the list.", name=name), "usage")
        else:
            try:
                params = command.run_parser(request.args)
            except UsageError as exc:
                problem = Reply(phrases.usage(exc.message, command.usage), "usage")
        cache_key = None
        if command is not None and command.is_lookup and not problem:
            refresh = request.meta.get("refresh")
            cache_key = request.meta["cache_key"] if refresh else command.cache_key(params)
        breaker = command.breaker if command else ""
        decision = await self.gate.check(request, cache_key, is_admin, breaker, outbound)
        if decision.override_ignored:
            log.warning("%s: an unusable limit override in Redis was ignored", request.request_id)
        return Parsed(command, params, problem, cache_key), decision

    async def _answer(
        self,
        request: Request,
        parsed: Parsed,
        decision: Decision,
        language: str,
        before_queue: Callable[[], Awaitable[None]] | None,
    ) -> Outcome:
        is_admin = request.user_key in self.admins
        command, params, problem = parsed.command, parsed.params, parsed.problem
        outcome = decision.outcome
        if outcome in ("limited", "limited_silent"):
            # Told once per window; a Discord interaction is shown the quiet copy every time.
            notice = Reply(phrases.retry_text(decision.retry_after), "limited", ephemeral=True)
            if outcome == "limited":
                return Outcome(notice, decision=outcome)
            return Outcome(None, decision=outcome, quiet=notice)
        if outcome in ("duplicate", "handling", "banned_silent"):
            return Outcome(None, decision=outcome)
        if outcome == "banned":
            return Outcome(Reply(phrases.BLOCKED, "notice"), decision=outcome)
        if outcome == "maintenance":
            return Outcome(Reply(decision.value, "notice"), decision=outcome)
        if outcome == "expired":
            return Outcome(Reply(EXPIRED, "notice", ephemeral=True), decision=outcome)
        if command is not None and command.admin is not None:
            return Outcome(await self._admin(command, request, params, problem, is_admin), decision="admin")
        if problem is not None or command is None:
            return Outcome(problem, decision="usage")
        if command.local is not None:
            return Outcome(Reply(command.local(params, is_admin)), decision="local")
        if command.personal is not None:
            return Outcome(Reply(await command.personal(self.redis, request, params)), decision="personal")
        if outcome == "hit" and request.meta.get("kind") != "inline":
            # The hot path: the same entry in the same language is rendered once per process.
            page = int(request.meta.get("page") or 1)  # "More" pressed: that page of the answer
            return Outcome(_shown(decision.value, language, page, parsed.cache_key or ""), decision=outcome)
        if outcome in ("hit", "stale", "stale_refresh", "stale_open"):
            # (An inline query's hit is left unrendered here: whether Telegram may show it to
            # everyone depends on how it reads in other languages.)
            cached = json.loads(decision.value)
            text = cached["text"]
            if outcome != "hit":
                why = (
                    phrases.not_answering(command.provider_name)
                    if outcome == "stale_open"
                    else phrases.REFRESHING
                )
                text = [text, phrases.stale_note(float(cached.get("at", 0)), phrases.may_be_outdated(why))]
            if outcome == "stale_refresh":
                await self._refresh(request, params)
            reply = Reply(text, cached.get("kind", "answer")).with_buttons(parsed.cache_key)
            return Outcome(reply, decision=outcome)
        if outcome == "open":
            text = phrases.unavailable_for(command.provider_name, decision.retry_after)
            return Outcome(Reply(text, "error"), decision=outcome)

        if request.meta.get("refresh") and outcome == "miss":
            kept = json.loads(decision.value).get("params") if decision.value else None
            if not isinstance(kept, dict):  # an entry written before entries kept their parameters
                await self._release(request.meta["cache_key"])
                return Outcome(Reply(EXPIRED, "notice", ephemeral=True), decision="expired")
            params = kept
        try:
            if before_queue is not None:
                await before_queue()
            if outcome == "coalesced":
                # The same lookup is already running: this request waits in Redis for it.
                return Outcome(None, queued=True, decision=outcome)
            await self.queue.lookup(request, params)
        except Exception as exc:  # broker down or unreachable: tell the user, never go quiet
            log.error("%s: could not queue the lookup: %r", request.request_id, exc)
            if outcome == "miss" and parsed.cache_key:
                await self._release(parsed.cache_key)
            return Outcome(Reply(phrases.UNAVAILABLE, "error"), decision="unavailable")
        return Outcome(None, queued=True, decision="miss")

    async def _release(self, cache_key: str) -> None:
        """The lookup this request was to lead will not run: clear its in-flight marker, so the
        next identical request is looked up at once, and tell everyone who coalesced behind
        it meanwhile (they are waiting for an answer that will not come)."""
        try:
            waiting = await self.gate.release(cache_key)
        except (redis.exceptions.RedisError, OSError) as exc:  # the marker expires by itself
            log.warning("could not release an in-flight lookup: %r", exc)
            return
        for data in waiting:
            await self.queue.deliver(Request.from_dict(data), Reply(phrases.UNAVAILABLE, "error"))

    async def _refresh(self, request: Request, params: Params) -> None:
        """Stale-while-revalidate: the user has the stale answer; one lookup refreshes it."""
        try:
            await self.queue.lookup(request, params, refresh=True)
        except Exception as exc:  # the stale answer stands; the in-flight marker expires
            log.warning("%s: could not queue a refresh: %r", request.request_id, exc)

    async def _admin(
        self,
        command: registry.Command,
        request: Request,
        params: Params,
        problem: Reply | None,
        is_admin: bool,
    ) -> Reply:
        """Admin commands: authorised here, on every call, whatever a platform shows; every
        attempt — refused, malformed or done — lands in the audit stream."""
        if not is_admin:
            reply = Reply(phrases.NOT_ALLOWED, "error")
            await admin.audit(self.redis, self.settings, request, "refused: not an admin")
            return reply
        if problem is not None:
            await admin.audit(self.redis, self.settings, request, "usage error")
            return replace(problem, private=True)
        assert command.admin is not None
        context = admin.AdminContext(self.settings, self.redis, request, self.queue)
        try:
            text = await command.admin(context, params)
        except UsageError as exc:
            await admin.audit(self.redis, self.settings, request, f"usage error: {exc}")
            return Reply(f"{exc}\nUsage: {command.usage}", "usage", private=True)
        except (redis.exceptions.RedisError, OSError) as exc:
            log.error("%s: admin /%s failed: %r", request.request_id, command.name, exc)
            text = "Failed: Redis is unavailable."
        await admin.audit(self.redis, self.settings, request, text.splitlines()[0][:200] if text else "")
        # Admin answers show other users' data: never to the rest of a group or channel.
        return Reply(text, "admin", private=True)
