"""The Celery app. Without CELERY_BROKER_URL, tasks run in-process (eager)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketerapi.settings")

app = Celery("marketerapi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="marketerapi.ping")
def ping(value: str = "pong") -> str:
    """A round-trip check for workers: answers what it was sent."""
    return value
