"""The Celery application, configured so that no accepted message is lost."""

from __future__ import annotations

import logging
import math
import os
import sys
from typing import Any

from celery import Celery, Task, signals
from kombu import Exchange, Queue

from config import Settings, get_settings

settings = get_settings()
IS_WORKER = "worker" in sys.argv[1:]


def request_id_of(args: Any) -> str:
    """The request id a task's arguments carry (a request, or a result holding one), or ""."""
    first = args[0] if args else None
    if isinstance(first, dict):
        request = first.get("request", first)
        if isinstance(request, dict) and "request_id" in request:
            return str(request["request_id"])
    return ""


class LabelledTask(Task):
    """Every task message — queued by the bot, a retry, the next step of a chain — labels its
    arguments with the request id (or a count) instead of Celery's repr of them: that label
    is what Flower and `celery events` show, so user text stays out, and no repr is built."""

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        first = args[0] if args else None
        label = request_id_of(args) or (f"{len(first)} items" if isinstance(first, list) else "")
        options.setdefault("argsrepr", label)
        options.setdefault("kwargsrepr", "")
        if ON_QUORUM_QUEUE and options.get("countdown"):
            # A countdown on a quorum queue travels through RabbitMQ's native delayed delivery,
            # in whole seconds: Celery truncates it, and one under a second (a short backoff,
            # a 429's retry_after of 0.5 s) raised "countdown must be a positive number" and
            # the task was rejected — a retry lost. Rounded up instead.
            options["countdown"] = math.ceil(options["countdown"])
        return super().apply_async(args, kwargs, **options)


def _redis_transport() -> str | None:
    """kombu's Redis transport with one client per channel (tasks/broker.py says why),
    through the Sentinels when they are set; None: the URL's own (RabbitMQ)."""
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        return None
    return "tasks.broker:SentinelTransport" if settings.sentinels else "tasks.broker:Transport"


def rabbitmq_queue(settings: Settings) -> Queue:
    """The task queue on RabbitMQ: a quorum queue by default (replicated across the cluster's
    nodes, durable) whose messages go to the dead-letter exchange after
    RABBITMQ_DELIVERY_LIMIT deliveries — a poison message that kills or stalls every worker
    taking it (acks_late brings it back each time) stops there instead of going round forever.
    A topic exchange: RabbitMQ's native delayed delivery, which Celery uses for countdown
    retries on quorum queues, cannot route through a direct one."""
    name = settings.CELERY_QUEUE
    arguments: dict[str, Any] = {
        "x-queue-type": settings.RABBITMQ_QUEUE_TYPE,
        "x-dead-letter-exchange": f"{name}.dead",
    }
    if settings.RABBITMQ_QUEUE_TYPE == "quorum":
        arguments["x-delivery-limit"] = settings.RABBITMQ_DELIVERY_LIMIT
    return Queue(name, Exchange(name, type="topic"), routing_key=name, queue_arguments=arguments)


def dead_letter_queue(settings: Settings) -> Queue:
    """Where dead-lettered tasks wait for an operator (nobody consumes it): `<queue>.dead`."""
    name = f"{settings.CELERY_QUEUE}.dead"
    return Queue(
        name, Exchange(name, type="fanout"), queue_arguments={"x-queue-type": settings.RABBITMQ_QUEUE_TYPE}
    )


BROKER_URL = settings.celery_redis_url(settings.broker_url)  # Sentinels: one sentinel:// URL each
BROKER_TRANSPORT = _redis_transport()
ON_RABBITMQ = BROKER_TRANSPORT is None
ON_QUORUM_QUEUE = ON_RABBITMQ and settings.RABBITMQ_QUEUE_TYPE == "quorum"

app = Celery("chatbot", task_cls=LabelledTask)
app.conf.update(
    # Read and write URLs too: Celery would take its broker_url from the environment's
    # CELERY_BROKER_URL, which is our setting's name, over what is configured here.
    broker_url=BROKER_URL,
    broker_read_url=BROKER_URL,
    broker_write_url=BROKER_URL,
    broker_transport=BROKER_TRANSPORT,
    task_default_queue=settings.CELERY_QUEUE,
    task_serializer="json",
    accept_content=["json"],
    # Replies travel through the deliver task, never through a result backend. The backend
    # (Redis, whichever broker) serves only the chord that gathers /reviews' sources.
    task_ignore_result=True,
    result_backend=settings.celery_redis_url(settings.REDIS_URL),
    result_expires=3600,
    result_backend_transport_options={
        "socket_timeout": settings.REDIS_TIMEOUT,
        "socket_connect_timeout": settings.REDIS_TIMEOUT,
        **settings.celery_sentinel_options,
    },
    # No loss: ack only after the task ran, and requeue when the worker process dies
    # (acks_late alone still acks on a killed child). One message per process at a time, so
    # a dying worker holds at most one.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    # The Redis transport redelivers unacked messages (countdown retries included) after
    # this many seconds; settings refuse a backoff cap anywhere near it. Workers sweep for
    # such messages every tenth of it: kombu's default sweep (every 10 s, scanning on every
    # 10th) could leave a dead worker's task waiting 100 s past the timeout.
    broker_transport_options={
        "visibility_timeout": settings.BROKER_VISIBILITY_TIMEOUT,
        "unacked_restore_interval": max(1, settings.BROKER_VISIBILITY_TIMEOUT // 10),
        "unacked_restore_throttle": 1,
        "socket_timeout": settings.REDIS_TIMEOUT,
        "socket_connect_timeout": settings.REDIS_TIMEOUT,
        **({} if ON_RABBITMQ else settings.celery_sentinel_options),
        # RabbitMQ: a publish returns once the queue has the message (on a quorum queue, a
        # majority of its nodes), so that one the bot was told is queued survives a node.
        **({"confirm_publish": True} if ON_RABBITMQ else {}),
    },
    **(
        {
            "task_queues": (rabbitmq_queue(settings),),
            "task_default_exchange_type": "topic",
            "broker_native_delayed_delivery_queue_type": settings.RABBITMQ_QUEUE_TYPE,
        }
        if ON_RABBITMQ
        else {}
    ),
    broker_connection_retry_on_startup=True,
    broker_connection_timeout=settings.REDIS_TIMEOUT,
    worker_cancel_long_running_tasks_on_connection_loss=True,
    # A publish during a broker outage: the bot fails fast so the user is told at once; a
    # worker (publishing the next step of a chain, a retry, a fan-out) waits up to about a
    # minute for the broker to return rather than drop a reply it already has.
    task_publish_retry_policy=(
        {"max_retries": 30, "interval_start": 0.5, "interval_step": 0.5, "interval_max": 2}
        if IS_WORKER
        else {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
    ),
    # Lookups wait on upstreams: a pool of threads runs many at once in one process (128
    # threads: one process of ~100 MB after 1,200 lookups; prefork: ~62 MB per process, one
    # lookup each; bench/load.py --capacity). Time limits hold only on prefork;
    # with threads every call a task makes is bounded instead (HTTP: connect + read timeout
    # and a deadline on the body; Redis: REDIS_TIMEOUT; quota waits: QUOTA_WAIT_MAX).
    worker_pool=settings.WORKER_POOL,
    worker_concurrency=settings.WORKER_CONCURRENCY,
    task_soft_time_limit=settings.TASK_SOFT_TIME_LIMIT,
    task_time_limit=settings.TASK_TIME_LIMIT,
    worker_send_task_events=False,
    worker_redirect_stdouts=False,
)


# --- process set-up: logs, Sentry, metrics ------------------------------------------------
@signals.setup_logging.connect
def _setup_logging(**_: object) -> None:
    # Connected, so Celery leaves the root logger to us: JSON lines with request ids.
    from bot.ops import logs

    logs.setup(settings, "worker")


@signals.celeryd_init.connect
@signals.worker_process_init.connect
@signals.beat_init.connect
def _init_sentry(**_: object) -> None:
    from bot.ops import sentry

    sentry.init(settings, "worker")


@signals.worker_init.connect
def _serve_metrics(**_: object) -> None:
    """/metrics of the whole worker (all pool processes) on WORKER_METRICS_PORT."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not settings.WORKER_METRICS_PORT or not directory:
        return
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    for stale in os.listdir(directory):  # values of an earlier worker run
        if stale.endswith(".db"):
            os.remove(os.path.join(directory, stale))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    try:
        start_http_server(settings.WORKER_METRICS_PORT, registry=registry)
    except OSError as exc:
        logging.getLogger(__name__).error(
            "worker metrics: port %s unavailable: %s", settings.WORKER_METRICS_PORT, exc
        )


@signals.worker_ready.connect
def _declare_dead_letters(**_: object) -> None:
    """The dead-letter queue exists before anything is dead-lettered (into an exchange that
    does not exist, RabbitMQ would drop it)."""
    if ON_RABBITMQ:
        with app.connection_for_write() as connection:
            dead_letter_queue(settings)(connection.default_channel).declare()


@signals.worker_process_shutdown.connect
def _process_gone(pid: int | None = None, **_: object) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and pid:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


@signals.task_prerun.connect
def _request_id(args: tuple[object, ...] | None = None, **_: object) -> None:
    """Every log line of a task carries the request id of the message it serves."""
    from bot.ops import logs

    if request_id := request_id_of(args):
        logs.request_id.set(request_id)
