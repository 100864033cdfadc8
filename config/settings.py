"""One typed settings object, read from the environment and `.env`.

Every field is named exactly as the environment variable a user sets (case-insensitive).
Every field is listed in docs/configuration.md and `.env.example`; keep the three in step.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Ids Telegram shows as the author of messages from many people (Bot API: Message.from).
TELEGRAM_SHARED_IDS = {
    "1087968824": "GroupAnonymousBot (every anonymous admin of every group)",
    "136817688": "Channel_Bot (every message sent on behalf of a channel)",
    "777000": "service account (automatic forwards from linked channels)",
}
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Rate:
    """A rate such as `20/minute`: `count` events per `period` seconds."""

    count: int
    period: float

    @property
    def interval_ms(self) -> int:
        """Milliseconds between two events at the steady rate (GCRA's emission interval), whole
        (stored as text where admins set limits)."""
        return max(1, round(self.period * 1000 / self.count))

    @property
    def exact_interval_ms(self) -> float:
        """The same, unrounded: outbound buckets keep Telegram's 30/s at 33.33 ms (30.3/s when
        rounded) and allow more than 1,000 events a second."""
        return self.period * 1000 / self.count

    def __str__(self) -> str:
        for name, seconds in _PERIODS.items():
            if self.period == seconds:
                return f"{self.count}/{name}"
        return f"{self.count}/{self.period:g}second"


def parse_rate(text: str) -> Rate:
    """Parse `N/second|minute|hour|day` (also `N/10second`); raise ValueError with the form."""
    match = _RATE_RE.match(text or "")
    if not match:
        raise ValueError(f"expected a rate like 20/minute (N/second, N/minute, N/hour, N/day), got {text!r}")
    count, multiple, unit = int(match[1]), int(match[2] or 1), match[3].lower()
    if count < 1 or multiple < 1:
        raise ValueError(f"a rate needs a positive count and period, got {text!r}")
    return Rate(count, multiple * _PERIODS[unit])


def parse_pairs(text: str) -> dict[str, str]:
    """`a=1/second, b=5000` → {"a": "1/second", "b": "5000"}; ValueError names a bad item."""
    table = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"expected name=value pairs, got {item!r}")
        table[name.strip()] = value.strip()
    return table


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- infrastructure -------------------------------------------------------------
    REDIS_URL: str = Field("redis://127.0.0.1:6379/0", description="Redis for gate, cache, replies")
    CELERY_BROKER_URL: str = Field("", description="Celery broker; empty means REDIS_URL")
    CELERY_QUEUE: str = Field("bot", description="queue name for lookups and deliveries")
    RABBITMQ_QUEUE_TYPE: Literal["quorum", "classic"] = Field(
        "quorum", description="RabbitMQ broker: the queue's type (quorum: replicated, with a delivery limit)"
    )
    RABBITMQ_DELIVERY_LIMIT: int = Field(
        5, ge=1, le=1000, description="RabbitMQ quorum queue: deliveries before a message is dead-lettered"
    )
    REDIS_TIMEOUT: float = Field(5.0, gt=0, description="seconds for any Redis call")
    REDIS_POOL_SIZE: int = Field(32, ge=1, le=1024, description="bot's Redis connections, opened at start")
    REDIS_SENTINELS: str = Field(
        "",
        description="host:port,… of Redis Sentinels; set: Redis is their primary (REDIS_URL: db, password)",
    )
    REDIS_SENTINEL_SERVICE: str = Field("mymaster", description="the primary's name the Sentinels monitor")
    REDIS_SENTINEL_PASSWORD: SecretStr = Field(
        SecretStr(""), description="the Sentinels' own password, if any"
    )

    # --- the gate -------------------------------------------------------------------
    RATE_LIMIT: str = Field("20/minute", description="per-user steady rate")
    RATE_LIMIT_BURST: int = Field(5, ge=1, le=10_000, description="messages a user may send at once")
    DEDUPE_LEASE: float = Field(30.0, ge=1, le=600, description="seconds a request id is being handled")
    DEDUPE_TTL: int = Field(86_400, ge=60, description="seconds a request id is remembered")
    INLINE_RATE_LIMIT: str = Field("60/minute", description="per-user rate of inline queries")
    INLINE_RATE_LIMIT_BURST: int = Field(20, ge=1, le=10_000, description="inline queries at once")

    # --- what users read --------------------------------------------------------------
    DEFAULT_LANGUAGE: Literal["en", "de", "fr"] = Field(
        "en", description="for users whose platform names no language we have (and the console)"
    )

    # --- lookups --------------------------------------------------------------------
    LOOKUP_MAX_RETRIES: int = Field(3, ge=0, le=20, description="retries after the first try")
    LOOKUP_RETRY_BACKOFF: float = Field(1.0, gt=0, description="first backoff in seconds; doubles")
    LOOKUP_RETRY_BACKOFF_MAX: float = Field(60.0, gt=0, description="cap on one backoff")
    DELIVER_MAX_RETRIES: int = Field(8, ge=0, le=50, description="retries of sending a reply")
    DELIVER_INLINE: bool = Field(True, description="the lookup task sends the reply itself when it can")
    LOOKUP_LEASE: float = Field(10.0, ge=2, le=60, description="seconds a lost worker's lookup waits")
    QUOTA_WAIT_MAX: float = Field(60.0, gt=0, description="longest a lookup waits for an upstream quota")
    UPSTREAM_CONNECT_TIMEOUT: float = Field(3.05, gt=0, description="seconds to connect upstream")
    UPSTREAM_READ_TIMEOUT: float = Field(10.0, gt=0, description="seconds to wait for a response")
    NEGATIVE_CACHE_TTL: int = Field(60, ge=0, description="seconds a 'not found' is cached")
    TASK_SOFT_TIME_LIMIT: float = Field(60.0, gt=0, description="soft limit on one task run")
    TASK_TIME_LIMIT: float = Field(90.0, gt=0, description="hard limit on one task run")
    BROKER_VISIBILITY_TIMEOUT: int = Field(300, ge=10, description="Redis broker redelivery")
    HTTP_USER_AGENT: str = Field(
        "chatbot-lookups/0.1 (https://example.invalid/chatbot; ops@example.invalid)",
        description="sent to every upstream (Wikimedia asks for a descriptive one)",
    )

    # --- resilience -------------------------------------------------------------------
    BREAKER_FAILURES: int = Field(5, ge=1, description="failures within the window that open a breaker")
    BREAKER_WINDOW: float = Field(60.0, gt=0, description="seconds over which failures count")
    BREAKER_COOLDOWN: float = Field(30.0, gt=0, description="seconds open before one probe")
    CACHE_GRACE: int = Field(86_400, ge=0, description="seconds a stale answer may still be served")
    REFRESH_FLOOR: float = Field(
        30.0, ge=0, description="seconds an answer is shown as it is when Refresh is pressed"
    )
    SUBSCRIPTIONS_PER_USER: int = Field(10, ge=0, le=1000, description="/watch and /daily each user may keep")
    WATCH_INTERVAL: int = Field(300, ge=10, description="seconds between two checks of a /watch")
    SUBSCRIPTION_TICK: float = Field(
        10.0, ge=1, le=300, description="seconds between beat's looks at due subscriptions"
    )
    SUGGEST_CACHE_TTL: int = Field(86_400, ge=60, description="seconds typing suggestions are cached")
    COALESCE: bool = Field(True, description="identical in-flight lookups share one upstream call")
    COALESCE_TTL: int = Field(300, ge=10, description="seconds an in-flight marker lives at most")
    UPSTREAM_RATE_LIMITS: str = Field(
        "open-meteo-geocoding=1/second", description="provider=RATE pairs enforced cluster-wide"
    )
    UPSTREAM_DAILY_CAPS: str = Field("", description="provider=N pairs: calls per UTC day")

    # --- providers ------------------------------------------------------------------
    FX_API_URL: str = "https://api.frankfurter.dev/v1"
    FX_CACHE_TTL: int = Field(3600, ge=0)
    WIKI_API_URL: str = "https://en.wikipedia.org/api/rest_v1"
    WIKI_CACHE_TTL: int = Field(86_400, ge=0)
    OPEN_METEO_GEOCODING_URL: str = "https://geocoding-api.open-meteo.com/v1"
    OPEN_METEO_URL: str = "https://api.open-meteo.com/v1"
    WEATHER_CACHE_TTL: int = Field(900, ge=0)
    YELP_API_KEY: SecretStr = SecretStr("")
    YELP_API_URL: str = "https://api.yelp.com/v3"
    FOURSQUARE_API_KEY: SecretStr = SecretStr("")
    FOURSQUARE_API_URL: str = "https://api.foursquare.com/v3"
    GOOGLE_PLACES_API_KEY: SecretStr = SecretStr("")
    GOOGLE_PLACES_API_URL: str = "https://places.googleapis.com/v1"
    REVIEWS_CACHE_TTL: int = Field(21_600, ge=0)

    # --- the bot's HTTP server (webhook, health) --------------------------------------
    HTTP_HOST: str = Field("0.0.0.0", description="address the bot's HTTP server binds")
    HTTP_PORT: int = Field(8080, ge=0, le=65535, description="port of the bot's HTTP server")

    # --- Telegram ----------------------------------------------------------------------
    TELEGRAM_TOKEN: SecretStr = Field(SecretStr(""), description="BotFather token; empty: off")
    TELEGRAM_API_URL: str = "https://api.telegram.org"
    TELEGRAM_MODE: Literal["polling", "webhook"] = "polling"
    TELEGRAM_WEBHOOK_URL: str = ""
    TELEGRAM_WEBHOOK_SECRET: SecretStr = SecretStr("")
    TELEGRAM_WEBHOOK_REPLIES: Literal["off", "private", "all"] = Field(
        "private", description="answers carried in the webhook's response: off, private chats, all"
    )
    TELEGRAM_INLINE_WAIT: float = Field(
        3.0, gt=0, le=10, description="seconds an inline query waits for a lookup before 'still looking'"
    )
    TELEGRAM_GLOBAL_RATE: str = Field("30/second", description="outbound messages per bot")
    TELEGRAM_CHAT_RATE: str = Field("1/second", description="outbound messages per chat")
    TELEGRAM_CHAT_BURST: int = Field(3, ge=1, description="short bursts tolerated per chat")
    TELEGRAM_GROUP_RATE: str = Field("20/minute", description="outbound messages per group")
    TELEGRAM_PAID_BROADCAST_RATE: str = Field(
        "", description="subscription notifications as paid broadcasts (Stars), e.g. 1000/second; empty: off"
    )

    # --- Discord -----------------------------------------------------------------------
    DISCORD_TOKEN: SecretStr = Field(SecretStr(""), description="bot token; empty: off")
    DISCORD_API_URL: str = "https://discord.com/api/v10"
    DISCORD_GATEWAY_URL: str = "wss://gateway.discord.gg/"
    DISCORD_GUILD_IDS: str = Field("", description="comma-separated guilds for instant sync")
    DISCORD_PREFIX: str = Field("", description="prefix commands such as !fx; empty: off")
    DISCORD_SHARD_COUNT: int = Field(0, ge=0, description="total shards; 0: one unsharded")
    DISCORD_SHARD_IDS: str = Field("", description="comma-separated shards this process runs")
    DISCORD_GLOBAL_RATE: str = Field("50/second", description="REST requests per bot")

    # --- console adapter ------------------------------------------------------------
    CONSOLE_DRAIN_TIMEOUT: float = Field(30.0, ge=0, description="wait at end of input")

    # --- admins -----------------------------------------------------------------------
    ADMINS: str = Field("console:local", description="platform:user ids allowed admin commands")
    AUDIT_MAX: int = Field(10_000, ge=100, description="admin actions kept in the audit stream")

    # --- operations ---------------------------------------------------------------------
    LOG_FORMAT: Literal["json", "console"] = Field("json", description="json lines, or console for humans")
    SENTRY_DSN: SecretStr = Field(SecretStr(""), description="empty: Sentry off")
    SENTRY_ENVIRONMENT: str = "production"
    SENTRY_RELEASE: str = ""
    SENTRY_TRACES_SAMPLE_RATE: float = Field(0.0, ge=0, le=1)
    SENTRY_SEND_PII: bool = False
    WORKER_POOL: Literal["threads", "prefork"] = Field(
        "threads", description="worker pool: threads (many lookups at once) or prefork"
    )
    WORKER_CONCURRENCY: int = Field(128, ge=1, le=1024, description="lookups one worker runs at once")
    WORKER_METRICS_PORT: int = Field(9100, ge=0, le=65535, description="worker /metrics; 0: off")

    LOG_LEVEL: str = "INFO"

    @field_validator(
        "RATE_LIMIT",
        "INLINE_RATE_LIMIT",
        "TELEGRAM_GLOBAL_RATE",
        "TELEGRAM_CHAT_RATE",
        "TELEGRAM_GROUP_RATE",
        "DISCORD_GLOBAL_RATE",
    )
    @classmethod
    def _check_rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator("TELEGRAM_PAID_BROADCAST_RATE")
    @classmethod
    def _check_optional_rate(cls, value: str) -> str:
        if value:
            parse_rate(value)
        return value

    @field_validator("LOG_LEVEL")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("REDIS_URL")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://host:port/db URL")
        return value

    @field_validator("CELERY_BROKER_URL")
    @classmethod
    def _check_broker(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "amqp://", "amqps://", "pyamqp://")):
            raise ValueError("expected a redis://… or amqp://… URL, or empty for REDIS_URL")
        return value

    @field_validator("REDIS_SENTINELS")
    @classmethod
    def _check_sentinels(cls, value: str) -> str:
        _addresses(value)
        return value

    @field_validator("DISCORD_GATEWAY_URL")
    @classmethod
    def _check_ws(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("expected a ws:// or wss:// URL")
        return value

    @field_validator("DISCORD_GUILD_IDS", "DISCORD_SHARD_IDS")
    @classmethod
    def _check_ids(cls, value: str) -> str:
        if value and not re.fullmatch(r"\s*\d+\s*(,\s*\d+\s*)*", value):
            raise ValueError("expected comma-separated numeric ids such as 123,456")
        return value

    @field_validator("ADMINS")
    @classmethod
    def _check_admins(cls, value: str) -> str:
        for item in filter(None, (x.strip() for x in value.split(","))):
            platform, _, user = item.partition(":")
            if platform not in ("console", "telegram", "discord") or not user:
                raise ValueError(f"expected platform:user entries such as telegram:123456, got {item!r}")
            if platform == "telegram" and user in TELEGRAM_SHARED_IDS:
                raise ValueError(
                    f"{item} is not one person but Telegram's {TELEGRAM_SHARED_IDS[user]}: "
                    "it would make all of them admins; name the admin's own user id"
                )
        return value

    @field_validator("DISCORD_PREFIX")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if value.startswith("/") or len(value) > 5 or any(ch.isspace() for ch in value):
            raise ValueError("expected a short prefix such as ! (not /, no spaces, at most 5 characters)")
        return value

    @field_validator("UPSTREAM_RATE_LIMITS")
    @classmethod
    def _check_rates(cls, value: str) -> str:
        try:
            rates = parse_pairs(value)
        except ValueError as exc:
            raise ValueError(
                f"{exc}: expected provider=RATE pairs such as open-meteo-geocoding=1/second"
            ) from None
        for rate in rates.values():
            parse_rate(rate)
        return value

    @field_validator("UPSTREAM_DAILY_CAPS")
    @classmethod
    def _check_caps(cls, value: str) -> str:
        try:
            caps = parse_pairs(value)
        except ValueError as exc:
            raise ValueError(f"{exc}: expected provider=N pairs such as yelp=5000") from None
        for name, cap in caps.items():
            if not cap.isdigit():
                raise ValueError(f"expected provider=N pairs such as yelp=5000, got {name}={cap!r}")
        return value

    @field_validator(
        "FX_API_URL",
        "WIKI_API_URL",
        "TELEGRAM_API_URL",
        "DISCORD_API_URL",
        "OPEN_METEO_GEOCODING_URL",
        "OPEN_METEO_URL",
        "YELP_API_URL",
        "FOURSQUARE_API_URL",
        "GOOGLE_PLACES_API_URL",
    )
    @classmethod
    def _check_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http(s):// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_backoff(self) -> Settings:
        # The Redis transport redelivers an unacked message after the visibility timeout,
        # countdown retries included: a backoff longer than that would run a lookup twice.
        if self.LOOKUP_RETRY_BACKOFF_MAX * 2 >= self.BROKER_VISIBILITY_TIMEOUT:
            raise ValueError(
                "LOOKUP_RETRY_BACKOFF_MAX must stay well under BROKER_VISIBILITY_TIMEOUT (at most half of it)"
            )
        if self.TELEGRAM_TOKEN.get_secret_value() and self.TELEGRAM_MODE == "webhook":
            if not self.TELEGRAM_WEBHOOK_URL.startswith(
                "https://"
            ) and not self.TELEGRAM_WEBHOOK_URL.startswith("http://"):
                raise ValueError("TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_URL (the public https:// URL)")
            secret = self.TELEGRAM_WEBHOOK_SECRET.get_secret_value()
            if not re.fullmatch(r"[A-Za-z0-9_-]{16,256}", secret):
                raise ValueError(
                    "TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_SECRET: "
                    "16-256 characters of A-Z a-z 0-9 _ -"
                )
        shard_ids = self.discord_shard_ids
        if shard_ids and not self.DISCORD_SHARD_COUNT:
            raise ValueError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT (the total number of shards)")
        if any(i >= self.DISCORD_SHARD_COUNT for i in shard_ids):
            raise ValueError("every id in DISCORD_SHARD_IDS must be below DISCORD_SHARD_COUNT")
        if self.BROKER_VISIBILITY_TIMEOUT <= self.TASK_TIME_LIMIT:
            raise ValueError(
                "BROKER_VISIBILITY_TIMEOUT must be above TASK_TIME_LIMIT (or running tasks get redelivered)"
            )
        if self.TASK_SOFT_TIME_LIMIT >= self.TASK_TIME_LIMIT:
            raise ValueError("TASK_SOFT_TIME_LIMIT must be below TASK_TIME_LIMIT")
        return self

    @property
    def rate(self) -> Rate:
        return parse_rate(self.RATE_LIMIT)

    # Parsed once: quotas are looked up on every upstream call.
    @cached_property
    def upstream_rates(self) -> dict[str, Rate]:
        return {name: parse_rate(rate) for name, rate in parse_pairs(self.UPSTREAM_RATE_LIMITS).items()}

    @cached_property
    def upstream_daily_caps(self) -> dict[str, int]:
        return {name: int(cap) for name, cap in parse_pairs(self.UPSTREAM_DAILY_CAPS).items()}

    @property
    def admins(self) -> frozenset[str]:
        return frozenset(x.strip() for x in self.ADMINS.split(",") if x.strip())

    @property
    def discord_guild_ids(self) -> list[int]:
        return [int(x) for x in self.DISCORD_GUILD_IDS.split(",") if x.strip()]

    @property
    def discord_shard_ids(self) -> list[int]:
        return [int(x) for x in self.DISCORD_SHARD_IDS.split(",") if x.strip()]

    @property
    def broker_url(self) -> str:
        return self.CELERY_BROKER_URL or self.REDIS_URL

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """The Sentinels' addresses; empty: Redis is at REDIS_URL itself."""
        return _addresses(self.REDIS_SENTINELS)

    def celery_redis_url(self, url: str) -> str:
        """A redis:// URL as Celery reaches it: itself, or with Sentinels one `sentinel://`
        URL per Sentinel carrying its password and db (kombu and Celery's backend ask them for
        the primary; the options are in `celery_sentinel_options`)."""
        if not self.sentinels or not url.startswith(("redis://", "rediss://")):
            return url
        parts = urlsplit(url)
        auth = parts.netloc.rpartition("@")[0]
        prefix = f"{auth}@" if auth else ""
        return ";".join(f"sentinel://{prefix}{host}:{port}{parts.path}" for host, port in self.sentinels)

    @property
    def celery_sentinel_options(self) -> dict[str, Any]:
        """Transport options of a Sentinel broker or backend (empty without Sentinels)."""
        if not self.sentinels:
            return {}
        options: dict[str, Any] = {"master_name": self.REDIS_SENTINEL_SERVICE}
        sentinel_kwargs: dict[str, Any] = {
            "socket_timeout": self.REDIS_TIMEOUT,
            "socket_connect_timeout": self.REDIS_TIMEOUT,
        }
        if self.REDIS_SENTINEL_PASSWORD.get_secret_value():
            sentinel_kwargs["password"] = self.REDIS_SENTINEL_PASSWORD.get_secret_value()
        options["sentinel_kwargs"] = sentinel_kwargs
        return options


def _addresses(value: str) -> list[tuple[str, int]]:
    """`host:port,host:port…` as (host, port) pairs; ValueError names the first bad one."""
    found = []
    for address in filter(None, (a.strip() for a in value.split(","))):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port,host:port… (got {address[:60]!r})")
        found.append((host.strip("[]"), int(port)))
    return found


class ConfigError(SystemExit):
    """Start-up stops with a readable message instead of a traceback."""


def format_errors(exc: ValidationError) -> str:
    lines = ["Configuration error:"]
    for err in exc.errors():
        name = ".".join(str(part) for part in err["loc"]) or "settings"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {name}: {msg}")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; a bad value exits with the variable's name."""
    try:
        return Settings()
    except ValidationError as exc:
        print(format_errors(exc), file=sys.stderr)
        raise ConfigError(2) from None
