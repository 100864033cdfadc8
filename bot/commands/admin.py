"""Admin commands: stats, limits, bans, cache, maintenance, dead letters, health, audit.

Authorization is not here but in the pipeline, which checks ADMINS on every call before a
handler runs. Handlers change state in Redis only, so every bot process and worker sees a
change at once: bans, limits and maintenance are read by the gate on the very next message.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from bot.commands import registry
from bot.commands.registry import Option, Params, UsageError, admin
from bot.core import keys
from bot.core.phrases import age_text
from bot.core.queue import TaskQueue
from bot.core.request import Reply, Request
from config import Settings, parse_rate

log = logging.getLogger(__name__)

_CONSOLE_USER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DISCORD_MENTION = re.compile(r"^<@!?(\d{5,25})>$")


@dataclass
class AdminContext:
    settings: Settings
    redis: Any  # redis.asyncio client
    request: Request
    queue: TaskQueue

    def is_user(self, raw: str) -> bool:
        """Whether `raw` names a user (see `user`)."""
        try:
            self.user(raw, replied=False)
        except UsageError:
            return False
        return True

    def user(self, raw: str, replied: bool = True) -> str:
        """USER as a user key: `platform:id`, a bare id on the admin's platform, a Discord
        mention, or — when empty — the author of the message the admin replied to."""
        raw = raw.strip()
        if not raw and replied and self.request.meta.get("reply_to_user"):
            raw = str(self.request.meta["reply_to_user"])
        if not raw:
            raise UsageError("Name a user: their id, or reply to one of their messages.")
        if mention := _DISCORD_MENTION.match(raw):
            return f"discord:{mention[1]}"
        platform, sep, ident = raw.partition(":")
        if not sep:
            platform, ident = self.request.platform, raw
        if platform in ("telegram", "discord"):
            # Telegram: a negative id is a chat that speaks as itself (a channel, anonymous admins).
            digits = ident.removeprefix("-") if platform == "telegram" else ident
            if not digits.isdigit() or len(digits) > 25:
                raise UsageError(f"{raw[:40]!r} is not a {platform} user id (digits).")
        elif platform == "console":
            if not _CONSOLE_USER.match(ident):
                raise UsageError(f"{raw[:40]!r} is not a console user name.")
        else:
            raise UsageError(
                f"Unknown platform {platform[:20]!r}: use telegram:ID, discord:ID or console:NAME."
            )
        return f"{platform}:{ident}"


async def audit(redis_client: Any, settings: Settings, request: Request, result: str) -> None:
    """Append who did what, where, with which arguments and what came of it."""
    entry = {
        "who": request.user_key,
        "platform": request.platform,
        "command": request.command,
        "args": request.args[:200],
        "result": result[:200],
        "at": f"{time.time():.3f}",
    }
    log.info("admin: %s /%s %s → %s", entry["who"], entry["command"], entry["args"], entry["result"])
    try:
        await redis_client.xadd(keys.AUDIT, entry, maxlen=settings.AUDIT_MAX, approximate=True)
    except Exception as exc:  # the action stands; losing its audit line is logged loudly
        log.error("admin: audit entry lost: %r", exc)


# --- /stats --------------------------------------------------------------------------------
@admin("stats", help="traffic, hit ratio, limits, queue, errors", usage="/stats")
async def stats(ctx: AdminContext, params: Params) -> str:
    if params["words"]:
        raise UsageError("/stats takes no arguments.")
    now = int(time.time() // 60)
    pipe = ctx.redis.pipeline(transaction=False)
    for minute in range(now - 59, now + 1):
        pipe.hgetall(keys.stats(minute))
    pipe.llen(keys.DEAD_LETTERS)
    pipe.get(keys.RUNNING)
    now_ms = int(time.time() * 1000)
    pipe.zcard(keys.SUBSCRIPTIONS_DUE)
    pipe.zcount(keys.SUBSCRIPTIONS_DUE, "-inf", now_ms)
    pipe.zrange(keys.SUBSCRIPTIONS_DUE, 0, 0, withscores=True)
    *minutes, dead, inflight, active, due, oldest = await pipe.execute()
    lines, notified = [], []
    for label, window in (("last 5 min", minutes[-5:]), ("last hour", minutes)):
        total: dict[str, int] = {}
        for counts in window:
            for name, value in counts.items():
                key = name.decode() if isinstance(name, bytes) else name
                total[key] = total.get(key, 0) + int(value)
        lookups: dict[str, dict[str, int]] = {}
        for field, value in total.items():
            if (parsed := keys.parse_lookup_stat(field)) is not None:
                lookups.setdefault(parsed[0], {})[parsed[1]] = value
        notified.append(total.pop(keys.NOTIFIED_STAT, 0))  # subscriptions', not messages
        messages = sum(v for k, v in total.items() if keys.parse_lookup_stat(k) is None)
        hits, misses = total.get("hit", 0), total.get("miss", 0)
        ratio = f"{hits / (hits + misses):.0%}" if hits + misses else "n/a"
        lines.append(
            f"{label}: {messages} messages, hit ratio {ratio} ({hits} hits, {misses} misses), "
            f"{total.get('limited', 0) + total.get('limited_silent', 0)} rate-limited, "
            f"{total.get('banned', 0) + total.get('banned_silent', 0)} banned"
        )
        for name, counts in sorted(lookups.items()):
            ok = counts.get("ok", 0) + counts.get("not_found", 0)
            failed, retries = counts.get("error", 0), counts.get("retry", 0)
            share = f"{failed / (ok + failed):.0%}" if ok + failed else "n/a"
            lines.append(f"  /{name}: {ok + failed} lookups, error ratio {share}, {retries} retries")
    depth = await ctx.queue.depth()
    lines.append(f"now: queue depth {depth}, lookups in flight {int(inflight or 0)}, dead letters {dead}")
    lag = max(0.0, (now_ms - oldest[0][1]) / 1000) if oldest else 0.0
    lines.append(
        f"subscriptions: {active} active, {due} due now, {lag:.0f} s behind schedule, "
        f"{notified[0] / 300:.1f} notifications/s over the last 5 min ({notified[0]} sent)"
    )
    return "\n".join(lines)


# --- /limit --------------------------------------------------------------------------------
MAX_RATE_COUNT = 10_000
MAX_RATE_PERIOD = 86_400  # seconds: gate.lua ignores an interval above a day


def _limit_value(ctx: AdminContext, words: list[str]) -> tuple[str, str]:
    """`RATE [burst N]` → stored "interval_ms:burst" and its readable form."""
    try:
        rate = parse_rate(words[0])
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # What the gate can hold: bounded here, so no admin can make every message fail there.
    if rate.count > MAX_RATE_COUNT or rate.period > MAX_RATE_PERIOD:
        raise UsageError(f"A rate allows at most {MAX_RATE_COUNT:,} messages, over at most a day.")
    burst = ctx.settings.RATE_LIMIT_BURST
    if len(words) == 3 and words[1] == "burst" and words[2].isdigit() and 1 <= int(words[2]) <= 10_000:
        burst = int(words[2])
    elif len(words) != 1:
        raise UsageError("Give a rate such as 5/minute, optionally followed by burst N.")
    return f"{rate.interval_ms}:{burst}", f"{rate} (burst {burst})"


def _readable(stored: str) -> str:
    interval, _, burst = stored.partition(":")
    per_minute = 60_000 / max(1, int(interval))
    return f"{per_minute:g}/minute (burst {burst})"


@admin(
    "limit",
    help="show or set rate limits",
    usage="/limit [default|USER] [RATE [burst N]|reset]",
    options=(
        Option("target", "default, or a user id", required=False),
        Option("rate", "e.g. 5/minute, or reset", required=False),
    ),
)
async def limit(ctx: AdminContext, params: Params) -> str:
    words: list[str] = params["words"]
    if not words:
        overrides = await ctx.redis.hgetall(keys.ADMIN)
        lines = [f"Configured default: {ctx.settings.RATE_LIMIT} (burst {ctx.settings.RATE_LIMIT_BURST})"]
        for field, value in sorted((k.decode(), v.decode()) for k, v in overrides.items()):
            if field == keys.DEFAULT_LIMIT_FIELD:
                lines.append(f"Default now: {_readable(value)} (set by an admin)")
            elif field.startswith("limit:"):
                lines.append(f"{field.removeprefix('limit:')}: {_readable(value)}")
        return "\n".join(lines)
    target = "*" if words[0] == "default" else ctx.user(words[0])
    field = keys.limit_field(target)
    if words[1:] == ["reset"]:
        removed = await ctx.redis.hdel(keys.ADMIN, field)
        if target != "*":
            await ctx.redis.delete(keys.rate(target))  # start afresh under the default
        who = "the default" if target == "*" else target
        return (
            f"Limit for {who} reset to the configured default." if removed else f"No limit was set for {who}."
        )
    if len(words) < 2:
        raise UsageError("Give a rate such as 5/minute, or reset.")
    stored, readable = _limit_value(ctx, words[1:])
    await ctx.redis.hset(keys.ADMIN, field, stored)
    if target != "*":
        await ctx.redis.delete(keys.rate(target))  # the new rate applies from the next message
    return f"Limit for {'everyone (default)' if target == '*' else target} is now {readable}."


# --- /ban /unban ---------------------------------------------------------------------------
USER = Option("user", "the user (id, or pick one)", "user")


@admin(
    "ban",
    help="ban a user",
    usage="/ban USER [reason]",
    options=(USER, Option("reason", "kept in the audit", required=False)),
)
async def ban(ctx: AdminContext, params: Params) -> str:
    words: list[str] = params["words"]
    # An explicit USER always wins; replying to a message names its author only when the
    # first word is not a user (then every word is the reason).
    explicit = bool(words) and (ctx.is_user(words[0]) or not ctx.request.meta.get("reply_to_user"))
    user = ctx.user(words[0] if explicit else "")
    reason = " ".join(words[1:] if explicit else words)[:200] or "banned by an admin"
    if user in ctx.settings.admins:
        return f"{user} is an admin; bans do not apply to admins."
    pipe = ctx.redis.pipeline(transaction=True)
    pipe.hset(keys.ADMIN, keys.ban_field(user), reason)
    pipe.hdel(keys.ADMIN, keys.noticed_field(user))
    await pipe.execute()
    return f"Banned {user}: {reason}"


@admin("unban", help="lift a ban", usage="/unban USER", options=(USER,))
async def unban(ctx: AdminContext, params: Params) -> str:
    words: list[str] = params["words"]
    if len(words) > 1:
        raise UsageError("/unban takes one user.")
    user = ctx.user(words[0] if words else "")
    pipe = ctx.redis.pipeline(transaction=True)
    pipe.hdel(keys.ADMIN, keys.ban_field(user))
    pipe.hdel(keys.ADMIN, keys.noticed_field(user))
    removed, _ = await pipe.execute()
    return f"Unbanned {user}." if removed else f"{user} was not banned."


# --- /flush --------------------------------------------------------------------------------
@admin(
    "flush",
    help="drop cached results",
    usage="/flush [COMMAND]",
    options=(Option("command", "only this command's cache", required=False),),
)
async def flush(ctx: AdminContext, params: Params) -> str:
    words: list[str] = params["words"]
    if len(words) > 1:
        raise UsageError("/flush takes at most one command name.")
    name = words[0].lstrip("/").lower() if words else ""
    if name:
        command = registry.get(name)
        if command is None or not command.is_lookup:
            lookups = ", ".join(c.name for c in registry.commands() if c.is_lookup)
            raise UsageError(f"{name[:32]!r} is not a cached command ({lookups}).")
    pattern = keys.cache_pattern(name)
    dropped = 0
    batch: list[bytes] = []
    async for key in ctx.redis.scan_iter(match=pattern, count=500):
        batch.append(key)
        if len(batch) >= 500:
            dropped += await ctx.redis.unlink(*batch)
            batch.clear()
    if batch:
        dropped += await ctx.redis.unlink(*batch)
    return f"Dropped {dropped} cached result{'s' if dropped != 1 else ''}{f' of /{name}' if name else ''}."


# --- /maintenance --------------------------------------------------------------------------
DEFAULT_MAINTENANCE = "The bot is under maintenance. Please try again later."


@admin(
    "maintenance",
    help="maintenance mode on or off",
    usage="/maintenance on [MESSAGE] | off",
    options=(Option("mode", "on or off"), Option("message", "what users see", required=False)),
)
async def maintenance(ctx: AdminContext, params: Params) -> str:
    words: list[str] = params["words"]
    mode = words[0].lower() if words else ""
    if mode == "on":
        message = ctx.request.args.split(None, 1)[1].strip() if len(words) > 1 else DEFAULT_MAINTENANCE
        await ctx.redis.hset(keys.ADMIN, keys.MAINTENANCE_FIELD, message[:500])
        return f"Maintenance on. Users now get: {message[:500]}"
    if mode == "off" and len(words) == 1:
        await ctx.redis.hdel(keys.ADMIN, keys.MAINTENANCE_FIELD)
        return "Maintenance off."
    if not words:
        current = await ctx.redis.hget(keys.ADMIN, keys.MAINTENANCE_FIELD)
        return f"Maintenance is on: {current.decode()}" if current else "Maintenance is off."
    raise UsageError("Say on [MESSAGE] or off.")


# --- /deadletters /replay ------------------------------------------------------------------
async def _dead_letters(ctx: AdminContext) -> list[tuple[bytes, dict[str, Any]]]:
    raw = await ctx.redis.lrange(keys.DEAD_LETTERS, 0, -1)
    entries = []
    for item in raw:
        try:
            entries.append((item, json.loads(item)))
        except ValueError:
            continue
    return entries


@admin("deadletters", help="requests that failed for good", usage="/deadletters [N]")
async def deadletters(ctx: AdminContext, params: Params) -> str:
    words: list[str] = params["words"]
    if words and not (words[0].isdigit() and 1 <= int(words[0]) <= 100):
        raise UsageError("Give how many to show, 1 to 100.")
    count = int(words[0]) if words else 10
    entries = await _dead_letters(ctx)
    if not entries:
        return "No dead letters."
    lines = [f"{len(entries)} dead letter{'s' if len(entries) != 1 else ''}, newest first:"]
    for _, entry in entries[:count]:
        request = entry.get("request") or {}
        lines.append(
            f"{entry.get('id')}: /{request.get('command')} {str(request.get('args', ''))[:60]} — "
            f"{str(entry.get('error'))[:80]} after {entry.get('attempts')} attempts, "
            f"{age_text(float(entry.get('at', 0)))}"
        )
    return "\n".join(lines)


@admin(
    "replay",
    help="re-run dead letters",
    usage="/replay ID|all",
    options=(Option("id", "a dead letter's id, or all"),),
)
async def replay(ctx: AdminContext, params: Params) -> str:
    words: list[str] = params["words"]
    if len(words) != 1:
        raise UsageError("Give a dead letter's id, or all.")
    entries = await _dead_letters(ctx)
    chosen = entries if words[0] == "all" else [e for e in entries if e[1].get("id") == words[0]]
    if not chosen:
        return "No such dead letter." if words[0] != "all" else "No dead letters."
    replayed = 0
    for raw, entry in chosen:
        data = dict(entry["request"])
        # A fresh id: the original one already carries the failure reply's delivery marks.
        data["request_id"] = f"{data['request_id']}~replay{int(time.time() * 1000)}"
        request = Request.from_dict(data)
        if entry.get("kind") == "delivery":
            await ctx.queue.deliver(request, Reply(str(entry.get("params", {}).get("reply", "")), "answer"))
        else:
            await ctx.queue.lookup(request, entry.get("params") or {})
        await ctx.redis.lrem(keys.DEAD_LETTERS, 1, raw)
        replayed += 1
    return f"Replayed {replayed} request{'s' if replayed != 1 else ''}; the users get their answers."


# --- /health -------------------------------------------------------------------------------
@admin("health", help="Redis, broker, workers, beat", usage="/health")
async def health(ctx: AdminContext, params: Params) -> str:
    if params["words"]:
        raise UsageError("/health takes no arguments.")
    lines = []
    try:
        await ctx.redis.ping()
        lines.append("Redis: ok")
    except Exception as exc:
        lines.append(f"Redis: unavailable ({type(exc).__name__})")
    depth = await ctx.queue.depth()
    lines.append(f"Broker: {'ok, ' + depth + ' queued' if depth.isdigit() else depth}")
    lines.append(f"Workers: {await ctx.queue.workers()}")
    seen = await ctx.redis.get(keys.BEAT_SEEN)
    lines.append(f"Beat: last seen {age_text(float(seen))}" if seen else "Beat: never seen")
    return "\n".join(lines)


# --- /audit --------------------------------------------------------------------------------
@admin(
    "audit",
    help="the last admin actions",
    usage="/audit [N]",
    options=(Option("count", "how many, up to 100", "number", required=False),),
)
async def audit_log(ctx: AdminContext, params: Params) -> str:
    words: list[str] = params["words"]
    if words and not (words[0].isdigit() and 1 <= int(words[0]) <= 100):
        raise UsageError("Give how many entries to show, 1 to 100.")
    entries = await ctx.redis.xrevrange(keys.AUDIT, count=int(words[0]) if words else 10)
    if not entries:
        return "No admin actions yet."
    lines = []
    for _, fields in entries:
        f = {k.decode(): v.decode() for k, v in fields.items()}
        lines.append(f"{age_text(float(f['at']))}: {f['who']} /{f['command']} {f['args']} → {f['result']}")
    return "\n".join(lines)
