"""Thin Celery wrappers over the governance services, and their periodic sweeps.

`approval_execute_task` is enqueued after the commit of the last approval (or by the
sweep when a change window opens); it claims the request with a conditional UPDATE, so a
duplicate message, a redelivery (acks_late) or two sweeps never run the action twice.
The beat schedule is CELERY_BEAT_SCHEDULE in marketerapi/settings.py.
"""

from __future__ import annotations

from marketerapi.celery import TASK_DEFAULTS, app


@app.task(name="governance.approval_execute", **TASK_DEFAULTS)
def approval_execute_task(request_id: int) -> str | None:
    """Run one approved request's action, once."""
    from governance.approvals import approval_execute

    request = approval_execute(request_id)
    return request.state if request is not None else None


@app.task(name="governance.approvals_run_due", **TASK_DEFAULTS)
def approvals_run_due_task() -> int:
    """Enqueue the approved requests whose change window has opened (or whose kick was lost)."""
    from governance.approvals import approvals_due

    due = approvals_due()
    for request_id in due:
        approval_execute_task.delay(request_id)
    return len(due)


@app.task(name="governance.approvals_expire", **TASK_DEFAULTS)
def approvals_expire_task() -> int:
    """Expire the pending requests filed more than 72 hours ago."""
    from governance.approvals import approvals_expire

    return approvals_expire()


@app.task(name="governance.idempotency_purge", **TASK_DEFAULTS)
def idempotency_purge_task() -> int:
    """Delete the idempotency records older than 24 hours (governance/limits/idempotency.py)."""
    from governance.limits.idempotency import purge_expired

    return purge_expired()


@app.task(name="governance.request_log_prune", **TASK_DEFAULTS)
def request_log_prune_task() -> int:
    """Delete the request log's rows past REQUEST_LOG_RETENTION_DAYS."""
    from governance.requestlog.services import request_log_prune

    return request_log_prune()
