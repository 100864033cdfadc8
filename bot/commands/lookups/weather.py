"""/weather PLACE — current weather from Open-Meteo: geocoding, then the forecast."""

from __future__ import annotations

from bot.commands.registry import Option, Params, UsageError, lookup, suggestions
from bot.core.i18n import N_, Message, number, t
from bot.core.text import clean
from bot.upstream.client import NotFound, Upstream

# WMO weather interpretation codes, as Open-Meteo documents them.
WEATHER_CODES = {
    0: N_("clear sky"), 1: N_("mainly clear"), 2: N_("partly cloudy"), 3: N_("overcast"),
    45: N_("fog"), 48: N_("depositing rime fog"), 51: N_("light drizzle"), 53: N_("drizzle"),
    55: N_("dense drizzle"), 56: N_("freezing drizzle"), 57: N_("dense freezing drizzle"),
    61: N_("light rain"), 63: N_("rain"), 65: N_("heavy rain"), 66: N_("freezing rain"),
    67: N_("heavy freezing rain"), 71: N_("light snow"), 73: N_("snow"), 75: N_("heavy snow"),
    77: N_("snow grains"), 80: N_("light showers"), 81: N_("showers"), 82: N_("violent showers"),
    85: N_("snow showers"), 86: N_("heavy snow showers"), 95: N_("thunderstorm"),
    96: N_("thunderstorm with hail"), 99: N_("thunderstorm with heavy hail"),
}  # fmt: skip


def parse(args: str) -> Params:
    text = clean(args)
    if not text:
        raise UsageError(t("Name a place."))
    if len(text) > 100:
        raise UsageError(t("That place name is too long."))
    return {"place": text.casefold()}


@lookup(
    "weather",
    help=N_("current weather for a place (Open-Meteo)"),
    usage="/weather PLACE",
    parse=parse,
    ttl_setting="WEATHER_CACHE_TTL",
    provider_name="Open-Meteo",
    breaker="open-meteo",
    watch="temperature",
    options=(Option("place", N_("a city or place, e.g. Paris"), suggest="places"),),
)
def weather(params: Params, upstream: Upstream) -> Message:
    settings = upstream.settings
    no_place = t("No such place: “{place}”.", place=params["place"])
    found = upstream.get_json(
        "open-meteo",
        f"{settings.OPEN_METEO_GEOCODING_URL}/search",
        {"name": params["place"], "count": 1, "language": "en", "format": "json"},
        not_found=no_place,
        quota="open-meteo-geocoding",
    )
    results = found.get("results") or []
    if not results:
        raise NotFound(no_place)
    place = results[0]
    current = upstream.get_json(
        "open-meteo",
        f"{settings.OPEN_METEO_URL}/forecast",
        {
            "latitude": place["latitude"],
            "longitude": place["longitude"],
            "current": "temperature_2m,apparent_temperature,weather_code,wind_speed_10m",
        },
        not_found=no_place,
    )["current"]
    name = ", ".join(str(p) for p in (place.get("name"), place.get("admin1"), place.get("country")) if p)
    code = int(current["weather_code"])
    sky = t(WEATHER_CODES[code]) if code in WEATHER_CODES else t("weather code {code}", code=str(code))
    temperature, feels = float(current["temperature_2m"]), float(current["apparent_temperature"])
    wind = float(current["wind_speed_10m"])
    return t(
        "{place}: {temperature} °C (feels like {feels} °C), {sky}, wind {wind} km/h",
        place=name,
        temperature=number(temperature, "0.0"),
        feels=number(feels, "0.0"),
        sky=sky,
        wind=number(wind, "0"),
    )


@suggestions("places", per_query=True)
def places(typed: str, upstream: Upstream) -> list[tuple[str, str]]:
    """Places whose name starts like what was typed (Open-Meteo geocoding, under its quota)."""
    found = upstream.get_json(
        "open-meteo",
        f"{upstream.settings.OPEN_METEO_GEOCODING_URL}/search",
        {"name": typed, "count": 10, "language": "en", "format": "json"},
        not_found="",
        quota="open-meteo-geocoding",
    )
    offered = []
    for place in found.get("results") or []:
        label = ", ".join(str(p) for p in (place.get("name"), place.get("admin1"), place.get("country")) if p)
        offered.append((label, str(place.get("name") or "")))
    return [(label, value) for label, value in offered if value]
