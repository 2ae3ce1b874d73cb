"""The Celery app. Without CELERY_BROKER_URL, tasks run in-process (eager).

Every app's tasks take TASK_DEFAULTS; the periodic schedule is one table,
CELERY_BEAT_SCHEDULE in marketerapi/settings.py.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

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


# Structured logs (marketerapi/logs.py): each task's lines carry its id as request id and
# the `task` door; beat's carry the `beat` door.
_task_contexts: dict[str, Any] = {}


@signals.task_prerun.connect
def _open_task_log_context(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    from marketerapi import logs

    _task_contexts[task_id or ""] = logs.open_context(request_id=task_id or "-", door="task", actor="system")
    logs.bind(task=getattr(task, "name", ""))


@signals.task_postrun.connect
def _close_task_log_context(task_id: str | None = None, **kwargs: Any) -> None:
    from marketerapi import logs

    token = _task_contexts.pop(task_id or "", None)
    if token is not None:
        try:
            logs.close_context(token)
        except ValueError:  # opened in another context (an eager task inside a request)
            pass


@signals.beat_init.connect
def _beat_log_context(**kwargs: Any) -> None:
    from marketerapi import logs

    logs.open_context(door="beat", actor="system")


@signals.worker_process_init.connect
def _tracing(**kwargs: Any) -> None:
    """OpenTelemetry in each worker process (after the fork), when OTEL_* is set."""
    from marketerapi import tracing

    tracing.configure()
