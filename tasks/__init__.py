"""Celery work: `celery -A tasks worker` finds `app` here and the tasks it registers."""

import os
import sys
import tempfile

# prometheus-client picks its storage when first imported: a prefork worker (and its children)
# must be in multiprocess mode before any metric exists. Only the worker command needs it;
# the bot imports this package too, to queue tasks, and keeps in-process metrics.
if "worker" in sys.argv[1:] and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="chatbot-metrics-")

from tasks import deliver, fanout, lookup, periodic, subscriptions, suggest  # noqa: F401  (registers the tasks)
from tasks.app import app

__all__ = ["app"]
