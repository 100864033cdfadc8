"""/watch, /daily, /subscriptions, /unsubscribe: a user's standing lookups, kept in Redis
(keys.subscription, keys.subscriptions_of, keys.SUBSCRIPTIONS_DUE); /daily times are in the
user's /timezone (bot/commands/preferences.py).

A subscription is one hash:
  user, platform, chat, meta   who is told, where (meta: what that platform needs to post)
  kind                         "watch" (a threshold) or "daily" (an answer at a time of day)
  command, args                the lookup, its arguments as its parser normalised them
  side, value                  watch: "above" or "below", and the number
  at, tz                       daily: "HH:MM" in that IANA time zone
  state                        "active", or "paused:<why>" (the chat is gone, the bot blocked)
  last                         watch: the side of the threshold at the last check ("" none yet),
                               so that an alert fires once per crossing
  due                          when it is next due (unix ms): also names its next notification
Each id is also in its user's set (counted against SUBSCRIPTIONS_PER_USER) and in
SUBSCRIPTIONS_DUE with the time beat next looks at it.
"""

from __future__ import annotations

import datetime
import json
import re
import time
import zoneinfo
from decimal import Decimal
from typing import Any

from bot.commands import registry
from bot.commands.preferences import zone_of
from bot.commands.registry import Option, Params, UsageError, personal
from bot.core import keys
from bot.core.i18n import N_, Message, number, t, tn
from bot.core.request import Request
from config import get_settings

SIDES = ("above", "below")
# ASCII digits only: str.isdigit() and \d also take "²" or "٣", which int() and Decimal() refuse
# or read in ways nobody typing a number meant.
_TIME = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")
_NUMBER = re.compile(r"^-?[0-9]{1,12}(?:[.,][0-9]{1,6})?$")
_ID = re.compile(r"^#?([0-9]{1,12})$")


def _watchable() -> str:
    return ", ".join(c.name for c in registry.commands() if c.watch)


def _lookup(name: str) -> registry.Command:
    command = registry.get(name.lower().lstrip("/"))
    if command is None or not command.is_lookup:
        raise UsageError(t("{name} is not a lookup: try fx, weather, wiki or reviews.", name=repr(name[:20])))
    return command


def parse_watch(args: str) -> Params:
    words = args.split()
    if len(words) < 4:
        raise UsageError(t("Say what to watch and when to tell you, e.g. /watch fx 100 USD EUR above 95."))
    name, *middle, side, raw = words
    command = _lookup(name)
    if not command.watch:
        raise UsageError(t("Only these can be watched: {names}.", names=_watchable()))
    if side.lower() not in SIDES:
        raise UsageError(t("Say above or below, then a number."))
    if not _NUMBER.match(raw):
        raise UsageError(t("{value} is not a number such as 95 or -2.5.", value=repr(raw[:20])))
    lookup_args = " ".join(middle)
    command.run_parser(lookup_args)  # its own usage errors, at once
    value = Decimal(raw.replace(",", "."))
    return {
        "command": command.name,
        "args": lookup_args,
        "side": side.lower(),
        "value": format(value.normalize(), "f"),
    }


def parse_daily(args: str) -> Params:
    words = args.split()
    if len(words) < 3 or words[-2].lower() != "at":
        raise UsageError(t("Say the lookup and the time, e.g. /daily weather Paris at 07:30."))
    name, *middle = words[:-2]
    clock = _TIME.match(words[-1])
    if clock is None:
        raise UsageError(t("{value} is not a time such as 07:30.", value=repr(words[-1][:20])))
    command = _lookup(name)
    lookup_args = " ".join(middle)
    command.run_parser(lookup_args)
    return {"command": command.name, "args": lookup_args, "at": f"{int(clock[1]):02d}:{clock[2]}"}


def parse_id(args: str) -> Params:
    word = args.strip().lower()
    if word == "all":
        return {"id": "all"}
    found = _ID.match(word)
    if found is None:
        raise UsageError(t("Name a subscription by its number (see /subscriptions), or all."))
    return {"id": str(int(found[1]))}


def next_daily(at: str, zone: str, now: float) -> float:
    """The next time (unix seconds, after `now`) the clock reads `at` in `zone`."""
    tz = zoneinfo.ZoneInfo(zone)
    hour, minute = (int(part) for part in at.split(":"))
    today = datetime.datetime.fromtimestamp(now, tz)
    due = today.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if due.timestamp() <= now:
        due = (today + datetime.timedelta(days=1)).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return due.timestamp()


def _over_cap() -> Message:
    cap = get_settings().SUBSCRIPTIONS_PER_USER
    return t("You have {n} subscriptions, the most allowed. Remove one with /unsubscribe first.", n=cap)


async def _create(redis: Any, request: Request, fields: dict[str, str], due: float) -> int | None:
    """Store a subscription for the asker within their cap: its id, or None over the cap."""
    cap = get_settings().SUBSCRIPTIONS_PER_USER
    mine = keys.subscriptions_of(request.user_key)
    if await redis.scard(mine) >= cap:
        return None
    sub_id = int(await redis.incr(keys.SUBSCRIPTION_IDS))
    meta = {k: v for k, v in request.meta.items() if k in ("chat_type",)}
    record = {
        "user": request.user_key,
        "platform": request.platform,
        "chat": request.chat,
        "meta": json.dumps(meta),
        "state": "active",
        "created": str(int(time.time())),
        **fields,
    }
    pipe = redis.pipeline(transaction=True)
    pipe.hset(keys.subscription(sub_id), mapping={**record, "due": str(int(due * 1000))})
    pipe.sadd(mine, sub_id)
    pipe.zadd(keys.SUBSCRIPTIONS_DUE, {str(sub_id): int(due * 1000)})
    pipe.scard(mine)
    *_, count = await pipe.execute()
    if count > cap:  # another message of theirs got in first: this one gives way
        await _remove(redis, request.user_key, [str(sub_id)])
        return None
    return sub_id


async def _remove(redis: Any, user_key: str, ids: list[str]) -> None:
    pipe = redis.pipeline(transaction=True)
    for sub_id in ids:
        pipe.delete(keys.subscription(sub_id))
        pipe.srem(keys.subscriptions_of(user_key), sub_id)
        pipe.zrem(keys.SUBSCRIPTIONS_DUE, sub_id)
    await pipe.execute()


@personal(
    "watch",
    help=N_("tell me when a number crosses a threshold, e.g. fx 100 USD EUR above 95"),
    usage="/watch fx AMOUNT FROM TO above|below VALUE",
    parse=parse_watch,
    options=(Option("what", N_("e.g. fx 100 USD EUR above 95, or weather Oslo below 0")),),
)
async def watch(redis: Any, request: Request, params: Params) -> Message:
    fields = {k: str(params[k]) for k in ("command", "args", "side", "value")} | {"kind": "watch", "last": ""}
    created = await _create(redis, request, fields, due=time.time())  # first check at the next tick
    if created is None:
        return _over_cap()
    what = f"{params['command']} {params['args']}"
    return t(
        "Watching {what} (#{id}): I will tell you when it goes {side} {value}.",
        what=what,
        id=created,
        side=t(params["side"]),
        value=number(Decimal(params["value"])),
    )


@personal(
    "daily",
    help=N_("a lookup every day at a time, e.g. weather Paris at 07:30"),
    usage="/daily COMMAND ARGS at HH:MM",
    parse=parse_daily,
    options=(Option("what", N_("e.g. weather Paris at 07:30")),),
)
async def daily(redis: Any, request: Request, params: Params) -> Message:
    zone = await zone_of(redis, request)
    fields = {
        "kind": "daily",
        "command": params["command"],
        "args": params["args"],
        "at": params["at"],
        "tz": zone,
    }
    created = await _create(redis, request, fields, due=next_daily(params["at"], zone, time.time()))
    if created is None:
        return _over_cap()
    return t(
        "Every day at {at} ({zone}): /{what} (#{id}). Change the time zone with /timezone.",
        at=params["at"],
        zone=zone,
        what=f"{params['command']} {params['args']}".strip(),
        id=created,
    )


@personal(
    "subscriptions",
    help=N_("list your /watch and /daily subscriptions"),
    usage="/subscriptions",
    parse=registry.no_args,
)
async def subscriptions(redis: Any, request: Request, params: Params) -> Message:
    ids = sorted(int(i) for i in await redis.smembers(keys.subscriptions_of(request.user_key)))
    if not ids:
        return t(
            "You have no subscriptions. Try /watch fx 100 USD EUR above 95 or /daily weather Paris at 07:30."
        )
    pipe = redis.pipeline(transaction=False)
    for sub_id in ids:
        pipe.hgetall(keys.subscription(sub_id))
    lines: list[Message] = [
        tn("You have {n} subscription:", "You have {n} subscriptions:", len(ids), n=len(ids))
    ]
    for sub_id, raw in zip(ids, await pipe.execute(), strict=True):
        sub = {k.decode(): v.decode() for k, v in raw.items()}
        if not sub:
            continue
        what = f"/{sub['command']} {sub['args']}".strip()
        if sub.get("kind") == "watch":
            line = t(
                "#{id} watch {what} {side} {value}",
                id=sub_id,
                what=what,
                side=t(sub["side"]),
                value=number(Decimal(sub["value"])),
            )
        else:
            line = t(
                "#{id} daily {what} at {at} ({zone})", id=sub_id, what=what, at=sub["at"], zone=sub["tz"]
            )
        state = sub.get("state", "active")
        if state.startswith("paused"):
            line = t("{line} — paused: {why}", line=line, why=t(state.partition(":")[2] or "paused"))
        lines.append(line)
    return lines


@personal(
    "unsubscribe",
    help=N_("stop a subscription: its number, or all"),
    usage="/unsubscribe ID|all",
    parse=parse_id,
    options=(Option("id", N_("the number /subscriptions shows, or all")),),
)
async def unsubscribe(redis: Any, request: Request, params: Params) -> Message:
    mine = [i.decode() for i in await redis.smembers(keys.subscriptions_of(request.user_key))]
    chosen = mine if params["id"] == "all" else [params["id"]] if params["id"] in mine else []
    if params["id"] != "all" and not chosen:
        return t("You have no subscription #{id}. /subscriptions lists yours.", id=params["id"])
    await _remove(redis, request.user_key, chosen)
    return tn("Removed {n} subscription.", "Removed {n} subscriptions.", len(chosen), n=len(chosen))


# Words the code above passes through t() by name (the sides, the reasons a subscription pauses).
_WORDS = (N_("above"), N_("below"), N_("paused"), N_("blocked"), N_("gone"))
