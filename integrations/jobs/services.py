"""Jobs: asynchronous units of work with state, progress, warnings and errors.

    queued ──claim──> running ──finish──> succeeded | partially_succeeded | failed
       └──cancel──> cancelled

Publish, export, send and destination pushes use these services; the state machine moves
only through conditional UPDATEs (`… WHERE state = 'queued'`), so two workers never run
one job and a finished job is never reopened. Progress is recorded per batch, with a
heartbeat, so a stuck job is visible and a resumed one does not start over.

Warnings and errors are lists of `{"code", "message", "hint", …}` a person can act on;
warnings about work that is still going on (a destination that was down) may later be
marked `resolved_at` when that work completes.

These services are the workers' and the requesting services' own (they take no actor:
the service that creates a job has asked the policy engine already). Reads, with their
access checks, are in selectors.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from governance.models import Environment
from integrations.jobs import slots
from integrations.models import Job, JobState

TERMINAL = frozenset({JobState.SUCCEEDED, JobState.PARTIALLY_SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


def note(code: str, message: str, hint: str = "", **extra: Any) -> dict[str, Any]:
    """One warning or error entry."""
    return {"code": code, "message": message, "hint": hint, **extra}


def job_create(
    *,
    environment: Environment,
    kind: str,
    target: Any = None,
    params: dict[str, Any] | None = None,
    requested_by: Any = None,
    total: int | None = None,
) -> Job:
    """A queued job. Enqueue its task with transaction.on_commit, never inside the transaction."""
    target_type = target_id = ""
    if isinstance(target, tuple):
        target_type, target_id = str(target[0]), str(target[1])
    elif target is not None:
        target_type, target_id = target._meta.label_lower, str(target.pk)
    return Job.objects.create(
        environment=environment,
        kind=kind,
        target_type=target_type,
        target_id=target_id,
        params=params or {},
        progress={"done": 0, "total": total} if total is not None else {},
        requested_by=requested_by if getattr(requested_by, "pk", None) else None,
    )


def job_claim(job_id: int, *, now: datetime | None = None) -> Job | None:
    """queued → running, for exactly one caller; None when the job is not queued (any more),
    or when it is heavy work and its environment's job slots are full (slots.py)."""
    now = now or timezone.now()
    kind = Job.objects.filter(pk=job_id).values_list("kind", flat=True).first()
    if kind is not None and slots.is_heavy(kind):
        return slots.claim(job_id, now=now)
    claimed = Job.objects.filter(pk=job_id, state=JobState.QUEUED).update(
        state=JobState.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
    )
    if claimed != 1:
        return None
    return Job.objects.select_related("environment").get(pk=job_id)


def job_take_over(job: Job, *, stale_before: datetime, now: datetime | None = None) -> Job | None:
    """A running job whose worker is gone (heartbeat older than `stale_before`) → running
    under the caller, counting an attempt; for exactly one caller (the attempts the caller
    read must still be the row's). None when it is not running, its heartbeat is fresh, or
    another caller took it over first."""
    now = now or timezone.now()
    taken = Job.objects.filter(
        pk=job.pk, state=JobState.RUNNING, heartbeat_at__lt=stale_before, attempts=job.attempts
    ).update(heartbeat_at=now, attempts=F("attempts") + 1)
    if taken != 1:
        return None
    return Job.objects.select_related("environment").get(pk=job.pk)


def job_progress(job: Job, *, done: int, total: int | None = None, now: datetime | None = None, **extra: Any) -> None:
    """Record how far a running job got (and that its worker is alive)."""
    now = now or timezone.now()
    progress = {**(job.progress or {}), **extra, "done": done}
    if total is not None:
        progress["total"] = total
    job.progress = progress
    job.heartbeat_at = now
    Job.objects.filter(pk=job.pk, state=JobState.RUNNING).update(progress=progress, heartbeat_at=now)


def job_finish(
    job: Job,
    *,
    warnings: Iterable[dict[str, Any]] = (),
    errors: Iterable[dict[str, Any]] = (),
    result: dict[str, Any] | None = None,
    state: str | None = None,
    now: datetime | None = None,
) -> Job:
    """running → a final state. Without `state`: errors or warnings make it
    partially_succeeded, neither makes it succeeded. Returns the job as stored."""
    now = now or timezone.now()
    all_warnings = [*(job.warnings or []), *warnings]
    all_errors = [*(job.errors or []), *errors]
    if state is None:
        state = JobState.PARTIALLY_SUCCEEDED if (all_warnings or all_errors) else JobState.SUCCEEDED
    if state not in TERMINAL:
        raise ValueError(f"{state!r} is not a final job state")
    values: dict[str, Any] = {
        "state": state,
        "finished_at": now,
        "heartbeat_at": now,
        "warnings": all_warnings,
        "errors": all_errors,
    }
    if result is not None:
        values["result"] = {**(job.result or {}), **result}
    progress = dict(job.progress or {})
    if state == JobState.SUCCEEDED and progress.get("total") is not None:
        progress["done"] = progress["total"]
    values["progress"] = progress
    if Job.objects.filter(pk=job.pk, state=JobState.RUNNING).update(**values):
        slots.released(job)
    job.refresh_from_db()
    return job


def job_fail(job: Job, *, error: dict[str, Any], now: datetime | None = None) -> Job:
    return job_finish(job, errors=[error], state=JobState.FAILED, now=now)


def job_cancel(job: Job, *, now: datetime | None = None) -> bool:
    """queued → cancelled; False when a worker already claimed it."""
    now = now or timezone.now()
    cancelled = Job.objects.filter(pk=job.pk, state=JobState.QUEUED).update(state=JobState.CANCELLED, finished_at=now)
    if cancelled:
        slots.released(job)
    return bool(cancelled)


def job_supersede(job: Job, *, by: int, error: dict[str, Any], now: datetime | None = None) -> bool:
    """queued or running → cancelled, replaced by job `by` (its one terminal state, whether
    a worker had started it or not), with `error` saying so and `result.superseded_by`.
    False when it had finished already. A worker still on it finds it no longer running:
    its progress and finish are no-ops (conditional on `running`)."""
    now = now or timezone.now()
    return bool(
        Job.objects.filter(pk=job.pk, state__in=[JobState.QUEUED, JobState.RUNNING]).update(
            state=JobState.CANCELLED,
            finished_at=now,
            errors=[*(job.errors or []), error],
            result={**(job.result or {}), "superseded_by": by},
        )
    )


@transaction.atomic
def job_amend(job_id: int, change: Any) -> Job:
    """Change a job's warnings, errors or result under its row lock (e.g. mark a warning
    resolved when deferred work is delivered after the job finished). `change(job)`
    edits the instance in place."""
    job = Job.objects.select_for_update().get(pk=job_id)
    change(job)
    job.save(update_fields=["warnings", "errors", "result"])
    return job
