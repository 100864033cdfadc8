"""Celery work: `celery -A tasks worker` finds `app` here and the tasks it registers."""

from tasks import lookup  # noqa: F401  (registers the tasks)
from tasks.app import app

__all__ = ["app"]
