"""Thin Celery wrappers over campaigns/sending/: run a send job, start scheduled campaigns,
and re-enqueue send jobs whose worker died or whose kick was lost.

Acknowledged late and rejected on worker loss, so a killed worker's message is delivered
again; the job's claim (or the takeover of a stale heartbeat) decides who runs, and the
Send rows decide what is sent, so nothing is sent twice.
"""

from __future__ import annotations

from marketerapi.celery import TASK_DEFAULTS, app


@app.task(name="campaigns.send", **TASK_DEFAULTS)
def campaign_send_task(job_id: int) -> str | None:
    """Freeze and send the recipients of a campaign's send job (returns when another worker has it)."""
    from campaigns.sending.runner import send_job_run

    job = send_job_run(job_id)
    return job.state if job is not None else None


@app.task(name="campaigns.start_due", **TASK_DEFAULTS)
def campaign_start_due_task() -> list[int]:
    """Start scheduled campaigns whose time has come (flag campaign_scheduling gates scheduling)."""
    from campaigns.sending.services import campaign_start_due

    return campaign_start_due()


@app.task(name="campaigns.send_recover", **TASK_DEFAULTS)
def campaign_send_recover_task() -> list[int]:
    """Enqueue send jobs again whose worker died (stale heartbeat) or whose kick was lost."""
    from campaigns.sending.runner import send_jobs_recover

    ids = send_jobs_recover()
    for job_id in ids:
        campaign_send_task.delay(job_id)
    return ids
