"""Thin Celery wrappers over audiences/publishing/runner.py (publishing's worker side): build
and publish a version, and the sweep that picks up publish jobs whose worker died or whose
kick was lost.

Acknowledged late and rejected on worker loss, so a killed worker's message is delivered
again; the job's claim (a conditional UPDATE, or the takeover of a stale heartbeat)
decides who runs, and a rerun starts the interrupted step over, so nothing is done twice.
"""

from __future__ import annotations

from marketerapi.celery import TASK_DEFAULTS, app


@app.task(name="audiences.publish", **TASK_DEFAULTS)
def audience_publish_task(job_id: int) -> str | None:
    """Materialize the version of a publish or rollback job, swap it live, deliver its diff."""
    from audiences.publishing.runner import publish_job_run

    job = publish_job_run(job_id)
    return job.state if job is not None else None


@app.task(name="audiences.publish_recover", **TASK_DEFAULTS)
def audience_publish_recover_task() -> list[int]:
    """Enqueue publish jobs again whose worker died (stale heartbeat) or whose kick was lost."""
    from audiences.publishing.runner import publish_jobs_recover

    return publish_jobs_recover()


@app.task(name="audiences.export", **TASK_DEFAULTS)
def export_task(job_id: int) -> str | None:
    """Write the export of an `export.create` job to its file (audiences/exports/runner.py)."""
    from audiences.exports.runner import export_job_run

    job = export_job_run(job_id)
    return job.state if job is not None else None


@app.task(name="audiences.exports_sweep", **TASK_DEFAULTS)
def exports_sweep_task() -> dict[str, object]:
    """Delete expired export files; enqueue again exports whose worker died or whose kick was lost."""
    from audiences.exports.runner import exports_sweep

    return exports_sweep()
