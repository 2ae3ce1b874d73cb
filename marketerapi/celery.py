"""The Celery app. Without CELERY_BROKER_URL, tasks run in-process (eager).

Every app's tasks take TASK_DEFAULTS; the periodic schedule is one table,
CELERY_BEAT_SCHEDULE in marketerapi/settings.py.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketerapi.settings")

app = Celery("marketerapi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Tasks are thin and idempotent (their work is claimed in the database): acknowledged
# after they finish, redelivered when a worker dies, and their return value is not kept.
TASK_DEFAULTS: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@app.task(name="marketerapi.ping")
def ping(value: str = "pong") -> str:
    """A round-trip check for workers: answers what it was sent."""
    return value
