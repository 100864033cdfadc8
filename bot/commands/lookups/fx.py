"""/fx AMOUNT FROM TO — currency conversion from Frankfurter (ECB reference rates)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from bot.commands.registry import Option, Params, UsageError, lookup, suggestions
from bot.core.i18n import N_, Message, day, number, t
from bot.upstream.client import Upstream

_CODE = re.compile(r"^[A-Za-z]{3}$")
# A plain decimal or scientific notation, bounded before Decimal ever sees it: "1e-999999"
# would otherwise become a million-digit amount in the task, the upstream URL and the cache.
_AMOUNT = re.compile(r"^\d{1,13}(?:[.,]\d{1,12})?(?:[eE][+-]?\d{1,2})?$")
MAX_AMOUNT = Decimal("1e12")
MIN_AMOUNT = Decimal("1e-6")  # a millionth: below it no ECB currency has a meaningful amount
MAX_AMOUNT_DIGITS = 20  # the normalised amount, as sent upstream and kept in the cache key


def parse(args: str) -> Params:
    words = args.split()
    if len(words) == 4 and words[2].lower() in {"to", "in"}:
        del words[2]  # "/fx 100 USD to EUR" reads naturally too
    if len(words) != 3:
        raise UsageError(t("Give an amount and two currency codes."))
    raw_amount, src, dst = words
    if not _AMOUNT.match(raw_amount):
        raise UsageError(t("{value} is not an amount such as 100 or 2.50.", value=repr(raw_amount[:20])))
    try:
        amount = Decimal(raw_amount.replace(",", "."))
    except InvalidOperation:
        raise UsageError(t("{value} is not a number.", value=repr(raw_amount[:20]))) from None
    if not amount.is_finite() or amount < MIN_AMOUNT or amount > MAX_AMOUNT:
        raise UsageError(
            t(
                "The amount must be between {low} and {high}.",
                low=number(MIN_AMOUNT, "0.######"),
                high=number(MAX_AMOUNT, "#,##0"),
            )
        )
    for code in (src, dst):
        if not _CODE.match(code):
            raise UsageError(
                t("{value} is not a three-letter currency code such as EUR.", value=repr(code[:20]))
            )
    if src.upper() == dst.upper():
        raise UsageError(t("Pick two different currencies."))
    # normalize() makes "1", "1.0" and "1.00" one cache entry; checked again once normalised.
    normal = format(amount.normalize(), "f")
    if len(normal) > MAX_AMOUNT_DIGITS:
        raise UsageError(t("That amount has too many digits; round it a little."))
    return {"amount": normal, "from": src.upper(), "to": dst.upper()}


def _amount(value: Decimal) -> Message:
    """Two decimals with grouping; a tiny amount to six significant digits."""
    return number(value, "#,##0.00" if abs(value) >= Decimal("0.01") else "@@@@@@")


@lookup(
    "fx",
    help=N_("convert an amount between currencies (ECB rates)"),
    usage="/fx AMOUNT FROM TO",
    parse=parse,
    ttl_setting="FX_CACHE_TTL",
    provider_name="Frankfurter",
    breaker="frankfurter",
    watch="converted",
    options=(
        Option("amount", N_("how much, e.g. 100"), "number"),
        Option("from", N_("currency code to convert from, e.g. USD"), suggest="currencies"),
        Option("to", N_("currency code to convert to, e.g. EUR"), suggest="currencies"),
    ),
)
def fx(params: Params, upstream: Upstream) -> Message:
    url = f"{upstream.settings.FX_API_URL}/latest"
    query = {"amount": params["amount"], "from": params["from"], "to": params["to"]}
    data = upstream.get_json(
        "frankfurter",
        url,
        query,
        not_found=t("Unknown currency: {src} or {dst}.", src=params["from"], dst=params["to"]),
    )
    converted = Decimal(str(data["rates"][params["to"]]))
    amount = Decimal(params["amount"])
    return t(
        "{amount} {src} = {converted} {dst} (ECB rate of {date})",
        amount=_amount(amount),
        src=params["from"],
        converted=_amount(converted),
        dst=params["to"],
        date=day(str(data["date"])),
    )


@suggestions("currencies", per_query=False)
def currencies(typed: str, upstream: Upstream) -> list[tuple[str, str]]:
    """Frankfurter's currency list ("USD — United States Dollar"), one fetch for every user."""
    url = f"{upstream.settings.FX_API_URL}/currencies"
    names = upstream.get_json("frankfurter", url, not_found="")
    return [(f"{code} — {name}", str(code)) for code, name in sorted(names.items()) if _CODE.match(str(code))]
