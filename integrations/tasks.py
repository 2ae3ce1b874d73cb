"""Thin Celery wrappers over the integrations services, and their periodic sweeps.

The relay, the webhook deliveries and the destination jobs are kicked after the commits
that create work (governance.outbox.emit, integrations/outbox/relay.py,
destinations/services.py) and swept by Celery beat (CELERY_BEAT_SCHEDULE), so a kick lost
to a crash or a broker outage only costs latency. Every task is idempotent (the claims
are conditional and leased in the database) and acknowledged late: a worker that dies
mid-task has its message redelivered, and the database's attempt counters bound how
often the same work is tried. The task names are part of the queued messages: they stay.
"""

from __future__ import annotations

from typing import Any

from marketerapi.celery import TASK_DEFAULTS, app

# One run stops after this long so a backlog is shared between workers and beat ticks.
TIME_BUDGET_SECONDS = 50.0


# --- outbox and webhooks ------------------------------------------------------------------


@app.task(name="integrations.relay_outbox", **TASK_DEFAULTS)
def relay_outbox_task() -> dict[str, int]:
    """Fan undispatched outbox events out to webhook deliveries, in id order."""
    from integrations.outbox import relay

    relay.kick_taken()
    return relay.relay_outbox(time_budget=TIME_BUDGET_SECONDS).as_dict()


@app.task(name="integrations.deliver_webhooks", **TASK_DEFAULTS)
def deliver_webhooks_task() -> dict[str, Any]:
    """Send the webhook deliveries that are due; retries are scheduled in the database."""
    from integrations.webhooks import delivery

    return delivery.deliver_webhooks(time_budget=TIME_BUDGET_SECONDS).as_dict()


# --- destinations -------------------------------------------------------------------------


@app.task(name="integrations.destination_job", **TASK_DEFAULTS)
def destination_job_task(job_id: int) -> str | None:
    """Run a delivery job's pushes once and finish the job (deferred work is retried by the sweep)."""
    from integrations.destinations import runner

    job = runner.destination_job_run(job_id)
    return job.state if job is not None else None


@app.task(name="integrations.destination_push", **TASK_DEFAULTS)
def destination_push_task(push_id: int) -> str | None:
    """Run one push if it is due."""
    from integrations.destinations import pushing

    outcome = pushing.push_run(push_id)
    return outcome.state if outcome is not None else None


@app.task(name="integrations.retry_deferred_pushes", **TASK_DEFAULTS)
def retry_deferred_pushes_task() -> dict[str, int]:
    """Run the pushes whose next attempt is due: deferred work is delivered, not dropped."""
    from integrations.destinations import runner

    return runner.pushes_run_due(time_budget=TIME_BUDGET_SECONDS)


# --- workers ------------------------------------------------------------------------------


@app.task(bind=True, name="integrations.worker_heartbeat", ignore_result=True)
def worker_heartbeat_task(self: Any) -> None:
    """Record the heartbeat of the worker that runs it (status/heartbeats.py: each worker
    also beats from a thread of its own)."""
    from integrations.status import heartbeats

    heartbeats.worker_beat(str(self.request.hostname or "unknown"))


@app.task(name="integrations.job_slots_dispatch", **TASK_DEFAULTS)
def job_slots_dispatch_task() -> list[int]:
    """Start queued heavy jobs that fit in their environment's free job slots (a lost kick)."""
    from integrations.jobs import slots

    return slots.dispatch_queued()
