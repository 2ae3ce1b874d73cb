"""Thin Celery wrappers over audiences/publish.py: build and publish a version, and the sweep
that picks up publish jobs whose worker died or whose kick was lost.

Acknowledged late and rejected on worker loss, so a killed worker's message is delivered
again; the job's claim (a conditional UPDATE, or the takeover of a stale heartbeat)
decides who runs, and a rerun starts the interrupted step over, so nothing is done twice.
"""

from __future__ import annotations

from typing import Any

from marketerapi.celery import app

# The recovery sweep's interval; a stale job is one silent for publish.STALE_AFTER.
RECOVER_SWEEP_SECONDS = 60.0

_COMMON: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@app.task(name="audiences.publish", **_COMMON)
def audience_publish_task(job_id: int) -> str | None:
    """Materialize the version of a publish or rollback job, swap it live, deliver its diff."""
    from audiences.publish import publish_job_run

    job = publish_job_run(job_id)
    return job.state if job is not None else None


@app.task(name="audiences.publish_recover", **_COMMON)
def audience_publish_recover_task() -> list[int]:
    """Enqueue publish jobs again whose worker died (stale heartbeat) or whose kick was lost."""
    from audiences.publish import publish_jobs_recover

    return publish_jobs_recover()


def register_periodic_tasks(sender: Any, **kwargs: Any) -> None:
    sender.add_periodic_task(
        RECOVER_SWEEP_SECONDS,
        audience_publish_recover_task.s(),
        name="audiences.publish_recover sweep",
        expires=RECOVER_SWEEP_SECONDS,
    )


app.on_after_finalize.connect(register_periodic_tasks, weak=False)
