"""Prometheus metrics, one definition for the bot and the workers.

The bot serves them on HTTP_PORT at /metrics, with gauges read from Redis at scrape time
(breakers, queue depth, lookups in flight, dead letters). Workers serve them on
WORKER_METRICS_PORT; under the prefork pool every child process writes its own values and
prometheus-client's multiprocess mode adds them up (tasks/app.py sets that up).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

MESSAGES = Counter(
    "chatbot_messages",
    "Incoming messages by platform, command and outcome",
    ["platform", "command", "outcome"],
)
CACHE = Counter("chatbot_cache_requests", "Cache lookups of the gate", ["result"])
REPLY_LATENCY = Histogram(
    "chatbot_reply_latency_seconds",
    "From message received to reply sent",
    ["platform", "path"],
    buckets=LATENCY_BUCKETS,
)
OUTBOUND_429 = Counter("chatbot_outbound_429", "429 answers from a chat platform", ["platform"])
LOOKUP_DURATION = Histogram(
    "chatbot_lookup_duration_seconds", "Provider call duration", ["provider"], buckets=LATENCY_BUCKETS
)
UPSTREAM_ERRORS = Counter(
    "chatbot_upstream_errors", "Upstream failures by provider and kind", ["provider", "kind"]
)
RETRIES = Counter("chatbot_retries", "Lookup retries scheduled", ["provider"])
DEAD_LETTERS = Counter("chatbot_dead_letters", "Requests dead-lettered", ["kind"])
DELIVERIES = Counter("chatbot_deliveries", "Replies sent by workers", ["platform", "result"])
NOTIFICATIONS = Counter("chatbot_notifications", "Subscription notifications sent", ["platform"])

CACHE_RESULTS = {"hit": "hit", "stale": "stale", "stale_refresh": "stale", "stale_open": "stale",
                 "miss": "miss", "coalesced": "miss"}  # fmt: skip


def count_message(platform: str, command: str, outcome: str) -> None:
    """`command` must be a known command's name, "unknown" or "-": labels are never user input."""
    MESSAGES.labels(platform, command or "-", outcome).inc()
    if outcome in CACHE_RESULTS:
        CACHE.labels(CACHE_RESULTS[outcome]).inc()


class RedisGauges(Collector):
    """Gauges read from Redis when Prometheus scrapes the bot (shared state, not per process)."""

    def __init__(self, read: Any):
        self.read = read  # () -> dict with breakers, queue_depth, in_flight, dead_letters

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            state = self.read()
        except Exception:  # Redis down: /readyz says so; /metrics still answers
            return
        breakers = GaugeMetricFamily(
            "chatbot_breaker_open", "1 while an upstream's breaker is open", labels=["provider", "state"]
        )
        for provider, value in state["breakers"].items():
            breakers.add_metric([provider, value], 0.0 if value == "closed" else 1.0)
        yield breakers
        yield GaugeMetricFamily(
            "chatbot_queue_depth", "Tasks waiting in the broker queue", value=state["queue_depth"]
        )
        yield GaugeMetricFamily(
            "chatbot_lookups_in_flight", "Lookups running in workers", value=state["in_flight"]
        )
        yield GaugeMetricFamily(
            "chatbot_dead_letters_pending", "Entries in the dead-letter list", value=state["dead_letters"]
        )
        yield GaugeMetricFamily(
            "chatbot_subscriptions_active",
            "Active /watch and /daily subscriptions",
            value=state["subscriptions"],
        )
        yield GaugeMetricFamily(
            "chatbot_subscriptions_due",
            "Subscriptions due now (not yet handled)",
            value=state["subscriptions_due"],
        )
        yield GaugeMetricFamily(
            "chatbot_subscriptions_lag_seconds",
            "How far behind schedule the most overdue subscription is",
            value=state["subscriptions_lag"],
        )
