"""/weather PLACE — current weather from Open-Meteo: geocoding, then the forecast."""

from __future__ import annotations

from bot.commands.registry import Option, Params, UsageError, lookup
from bot.core.text import clean
from bot.upstream.client import NotFound, Upstream

# WMO weather interpretation codes, as Open-Meteo documents them.
WEATHER_CODES = {
    0: "clear sky", 1: "mainly clear", 2: "partly cloudy", 3: "overcast", 45: "fog",
    48: "depositing rime fog", 51: "light drizzle", 53: "drizzle", 55: "dense drizzle",
    56: "freezing drizzle", 57: "dense freezing drizzle", 61: "light rain", 63: "rain",
    65: "heavy rain", 66: "freezing rain", 67: "heavy freezing rain", 71: "light snow",
    73: "snow", 75: "heavy snow", 77: "snow grains", 80: "light showers", 81: "showers",
    82: "violent showers", 85: "snow showers", 86: "heavy snow showers", 95: "thunderstorm",
    96: "thunderstorm with hail", 99: "thunderstorm with heavy hail",
}  # fmt: skip


def parse(args: str) -> Params:
    text = clean(args)
    if not text:
        raise UsageError("Name a place.")
    if len(text) > 100:
        raise UsageError("That place name is too long.")
    return {"place": text.casefold()}


@lookup(
    "weather",
    help="current weather for a place (Open-Meteo)",
    usage="/weather PLACE",
    parse=parse,
    ttl_setting="WEATHER_CACHE_TTL",
    provider_name="Open-Meteo",
    breaker="open-meteo",
    options=(Option("place", "a city or place, e.g. Paris"),),
)
def weather(params: Params, upstream: Upstream) -> str:
    settings = upstream.settings
    no_place = f"No such place: “{params['place']}”."
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
    sky = WEATHER_CODES.get(int(current["weather_code"]), f"weather code {current['weather_code']}")
    temperature, feels = float(current["temperature_2m"]), float(current["apparent_temperature"])
    wind = float(current["wind_speed_10m"])
    return f"{name}: {temperature:.1f} °C (feels like {feels:.1f} °C), {sky}, wind {wind:.0f} km/h"
