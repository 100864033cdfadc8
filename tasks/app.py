"""The Celery application, configured so that no accepted message is lost."""

from __future__ import annotations

from celery import Celery

from config import get_settings

settings = get_settings()

app = Celery("chatbot")
app.conf.update(
    broker_url=settings.broker_url,
    task_default_queue=settings.CELERY_QUEUE,
    task_serializer="json",
    accept_content=["json"],
    # Replies travel through the deliver task, never through a result backend. The backend
    # (Redis, whichever broker) serves only the chord that gathers /reviews' sources.
    task_ignore_result=True,
    result_backend=settings.REDIS_URL,
    result_expires=3600,
    result_backend_transport_options={
        "socket_timeout": settings.REDIS_TIMEOUT,
        "socket_connect_timeout": settings.REDIS_TIMEOUT,
    },
    # No loss: ack only after the task ran, and requeue when the worker process dies
    # (acks_late alone still acks on a killed child). One message per process at a time, so
    # a dying worker holds at most one.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    # The Redis transport redelivers unacked messages (countdown retries included) after
    # this many seconds; settings refuse a backoff cap anywhere near it.
    broker_transport_options={
        "visibility_timeout": settings.BROKER_VISIBILITY_TIMEOUT,
        "socket_timeout": settings.REDIS_TIMEOUT,
        "socket_connect_timeout": settings.REDIS_TIMEOUT,
    },
    broker_connection_retry_on_startup=True,
    broker_connection_timeout=settings.REDIS_TIMEOUT,
    worker_cancel_long_running_tasks_on_connection_loss=True,
    # A publish during a broker outage fails fast so the user can be told, not hang.
    task_publish_retry_policy={
        "max_retries": 2,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 1,
    },
    task_soft_time_limit=settings.TASK_SOFT_TIME_LIMIT,
    task_time_limit=settings.TASK_TIME_LIMIT,
    worker_send_task_events=False,
    worker_redirect_stdouts=False,
)
