"""Celery tasks for destinations: delivery jobs, the retry of deferred pushes, and the
worker heartbeat that /status reads.

Thin wrappers over integrations.destinations and integrations.status; idempotent (pushes
and jobs are claimed with conditional UPDATEs) and acknowledged late. integrations/tasks.py
imports this module, so Celery's autodiscovery finds these tasks.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from marketerapi.celery import TASK_DEFAULTS, app

logger = logging.getLogger("marketerapi.destination_tasks")

__all__ = [
    "destination_job_task",
    "destination_push_task",
    "retry_deferred_pushes_task",
    "worker_heartbeat_task",
]

TIME_BUDGET_SECONDS = 50.0


@app.task(name="integrations.destination_job", **TASK_DEFAULTS)
def destination_job_task(job_id: int) -> str | None:
    """Run a delivery job's pushes once and finish the job (deferred work is retried by the sweep)."""
    from integrations.destinations.services import destination_job_run

    job = destination_job_run(job_id)
    return job.state if job is not None else None


@app.task(name="integrations.destination_push", **TASK_DEFAULTS)
def destination_push_task(push_id: int) -> str | None:
    """Run one push if it is due."""
    from integrations.destinations.services import push_run

    outcome = push_run(push_id)
    return outcome.state if outcome is not None else None


@app.task(name="integrations.retry_deferred_pushes", **TASK_DEFAULTS)
def retry_deferred_pushes_task() -> dict[str, int]:
    """Run the pushes whose next attempt is due: deferred work is delivered, not dropped."""
    from integrations.destinations.services import pushes_run_due

    return pushes_run_due(time_budget=TIME_BUDGET_SECONDS)


@app.task(bind=True, name="integrations.worker_heartbeat", ignore_result=True)
def worker_heartbeat_task(self: Any) -> None:
    """Record the heartbeat of the worker that runs it (the thread below does it too)."""
    from integrations.status import worker_beat

    worker_beat(str(self.request.hostname or "unknown"))


# --- worker heartbeats from the worker process itself ----------------------------------

_stop = threading.Event()


def _beat_forever(hostname: str) -> None:
    from integrations.status import HEARTBEAT_SECONDS, worker_beat

    while not _stop.wait(HEARTBEAT_SECONDS):
        try:
            worker_beat(hostname)
        except Exception:
            logger.warning("worker heartbeat failed", exc_info=True)


@worker_ready.connect(weak=False)
def _on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    from integrations.status import worker_beat

    hostname = str(getattr(sender, "hostname", "") or "worker")
    try:
        worker_beat(hostname)
    except Exception:
        logger.warning("could not write the first worker heartbeat", exc_info=True)
    _stop.clear()
    threading.Thread(target=_beat_forever, args=(hostname,), name="marketerapi-heartbeat", daemon=True).start()


@worker_shutdown.connect(weak=False)
def _on_worker_shutdown(sender: Any = None, **kwargs: Any) -> None:
    from integrations.status import worker_gone

    _stop.set()
    try:
        worker_gone(str(getattr(sender, "hostname", "") or "worker"))
    except Exception:
        logger.warning("could not remove the worker heartbeat", exc_info=True)
